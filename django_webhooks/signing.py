"""Standard Webhooks signatures (https://www.standardwebhooks.com): ``v1`` and ``v1a``.

A request carries ``webhook-id`` (the message id, stable across retries), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: one signature per signing secret or
key, space-separated, so a receiver that knows any one of them accepts it. The signed content is
``f"{msg_id}.{timestamp}."`` followed by the exact body bytes sent.

* ``v1,<base64 HMAC-SHA256>`` with a shared secret, ``whsec_`` + base64 of its bytes.
* ``v1a,<base64 ed25519 signature>`` with a private key, ``whsk_`` + base64; receivers verify it
  with the public key, ``whpk_`` + base64 of its 32 bytes, which cannot sign. A private key is
  written as Svix writes it: the 32-byte seed followed by the 32-byte public key (64 bytes); the
  32-byte seed alone is read too. Public keys are also published as JWKs (RFC 8037, ``OKP`` /
  ``Ed25519``), identified by their RFC 7638 thumbprint (:func:`key_id`).

Whatever signs or verifies tells the schemes apart by the prefix: a ``whsk_`` key makes a
``v1a`` signature, anything else a ``v1`` one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import secrets as _secrets
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
SECRET_BYTES = 32
PRIVATE_KEY_PREFIX = "whsk_"
PUBLIC_KEY_PREFIX = "whpk_"
ASYMMETRIC_SIGNATURE_VERSION = "v1a"
ED25519_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64

Secret = str | bytes
Timestamp = int | float | datetime


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def decode_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_...`` secret: standard base64 after an optional ``whsec_`` prefix.

    Missing padding is tolerated, like the reference libraries. Raises ``ValueError`` for
    anything that is not base64. The one parser of secrets: signing, verifying and
    :func:`~django_webhooks.secret_store.validate_secret` use it.
    """
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("Webhook signing secret is not valid base64 (expected 'whsec_' + base64).") from None


def secret_key(secret: Secret) -> bytes:
    """The HMAC key of ``secret``: a ``str`` is decoded (:func:`decode_secret`), ``bytes`` are the key itself."""
    key = secret if isinstance(secret, bytes) else decode_secret(secret)
    if not key:
        raise ValueError("Webhook signing secret may not be empty.")
    return key


def timestamp_seconds(timestamp: Timestamp) -> int:
    """Integer Unix seconds of ``timestamp`` (an int, a float or an aware datetime)."""
    if isinstance(timestamp, datetime):
        if timestamp.tzinfo is None:
            raise ValueError("Webhook timestamps must be timezone-aware datetimes.")
        return math.floor(timestamp.timestamp())
    if isinstance(timestamp, bool) or not isinstance(timestamp, int | float):
        raise TypeError(f"Webhook timestamp must be an int, float or datetime, not {type(timestamp).__name__}.")
    return math.floor(timestamp)


def check_message_id(msg_id: str) -> None:
    """Raise ``ValueError`` unless ``msg_id`` can be a ``webhook-id`` (non-empty, no ``.``)."""
    if not isinstance(msg_id, str) or not msg_id:
        raise ValueError("Webhook message id must be a non-empty string.")
    if "." in msg_id or any(ch.isspace() for ch in msg_id):
        raise ValueError(f"Webhook message id {msg_id!r} may not contain '.' or whitespace.")


def signed_content(msg_id: str, timestamp: Timestamp, body: bytes) -> bytes:
    """The bytes a v1 signature covers: ``{id}.{timestamp}.{body}``."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    return f"{msg_id}.{timestamp_seconds(timestamp)}.".encode() + body


def signature_digest(key: bytes, msg_id: str, timestamp: Timestamp, body: bytes) -> bytes:
    """The raw HMAC-SHA256 digest for ``key`` (see :func:`secret_key`)."""
    return hmac.new(key, signed_content(msg_id, timestamp, body), hashlib.sha256).digest()


def sign(secret: Secret, msg_id: str, timestamp: Timestamp, body: bytes) -> str:
    """One signature of ``body`` for message ``msg_id`` sent at ``timestamp``.

    ``v1a,<base64>`` (ed25519) for a ``whsk_`` private key, ``v1,<base64>`` (HMAC-SHA256) for a
    ``whsec_`` secret or raw key bytes.
    """
    check_message_id(msg_id)
    if is_private_key(secret):
        signature = _signing_key(secret).sign(signed_content(msg_id, timestamp, body))
        return f"{ASYMMETRIC_SIGNATURE_VERSION},{base64.b64encode(signature).decode('ascii')}"
    digest = signature_digest(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Secret | Iterable[Secret], msg_id: str, timestamp: Timestamp, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret or private key, space-separated, in order."""
    if isinstance(secrets, str | bytes):
        secrets = [secrets]
    signatures = [sign(secret, msg_id, timestamp, body) for secret in secrets]
    if not signatures:
        raise ValueError("At least one signing secret is needed to sign a webhook.")
    return " ".join(signatures)


def webhook_headers(
    msg_id: str, timestamp: Timestamp, body: bytes, secrets: Secret | Iterable[Secret]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt.

    ``secrets`` holds ``whsec_`` secrets (``v1`` signatures), ``whsk_`` private keys (``v1a``), or both.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_seconds(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }


# -- v1a: ed25519 key pairs -------------------------------------------------------------------------


def is_private_key(secret: object) -> bool:
    """Whether ``secret`` is a ``whsk_`` private key (it signs ``v1a``), not a ``v1`` secret.

    Standard base64 has no ``_``, so no ``v1`` secret, prefixed or not, starts with ``whsk_``.
    """
    return isinstance(secret, str) and secret.startswith(PRIVATE_KEY_PREFIX)


def _decode_key(value: str, prefix: str, what: str) -> bytes:
    if not isinstance(value, str) or not value.startswith(prefix):
        raise ValueError(f"A webhook {what} must start with {prefix!r} followed by base64.")
    encoded = value.removeprefix(prefix)
    try:
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"The part of a webhook {what} after {prefix!r} is not valid base64.") from None


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def generate_key_pair() -> tuple[str, str]:
    """A new ed25519 key pair: the private key (``whsk_`` + base64 of seed and public key, 64 bytes)
    and its public key (``whpk_`` + base64 of 32 bytes)."""
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = _public_bytes(private.public_key())
    return encode_private_key(seed + public), encode_public_key(public)


def encode_private_key(raw: bytes) -> str:
    return PRIVATE_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def encode_public_key(raw: bytes) -> str:
    return PUBLIC_KEY_PREFIX + base64.b64encode(raw).decode("ascii")


def decode_private_key(private_key: str) -> Ed25519PrivateKey:
    """The ed25519 key of a ``whsk_`` string: a 32-byte seed, or the seed then its public key (64 bytes).

    Raises ``ValueError`` for anything else, and for 64 bytes whose second half is not the
    seed's public key. The one parser of private keys: signing and validation use it.
    """
    raw = _decode_key(private_key, PRIVATE_KEY_PREFIX, "private key")
    if len(raw) not in (ED25519_KEY_BYTES, 2 * ED25519_KEY_BYTES):
        raise ValueError(
            f"A webhook private key must encode a 32-byte ed25519 seed, alone or followed by its "
            f"32-byte public key; this one has {len(raw)} bytes."
        )
    key = Ed25519PrivateKey.from_private_bytes(raw[:ED25519_KEY_BYTES])
    public = raw[ED25519_KEY_BYTES:]
    if public and not hmac.compare_digest(public, _public_bytes(key.public_key())):
        raise ValueError("The second half of this webhook private key is not the public key of its seed.")
    return key


#: Parsing a private key costs as much as a signature; a worker signs with the same few keys again and again.
_signing_key = lru_cache(maxsize=256)(decode_private_key)


def decode_public_key(public_key: str) -> Ed25519PublicKey:
    """The ed25519 key of a ``whpk_`` string (32 bytes); ``ValueError`` for anything else."""
    raw = _decode_key(public_key, PUBLIC_KEY_PREFIX, "public key")
    if len(raw) != ED25519_KEY_BYTES:
        raise ValueError(f"A webhook public key must encode 32 bytes; this one has {len(raw)}.")
    return Ed25519PublicKey.from_public_bytes(raw)


def public_key_of(private_key: str) -> str:
    """The ``whpk_`` public key of a ``whsk_`` private key."""
    return encode_public_key(_public_bytes(decode_private_key(private_key).public_key()))


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk(public_key: str) -> dict[str, str]:
    """The JWK of a ``whpk_`` public key (RFC 8037): ``kty`` ``OKP``, ``crv`` ``Ed25519``, ``x``, with its ``kid``."""
    raw = _public_bytes(decode_public_key(public_key))
    members = {"crv": "Ed25519", "kty": "OKP", "x": _base64url(raw)}
    return {**members, "kid": _thumbprint(members), "alg": "EdDSA", "use": "sig"}


def _thumbprint(members: dict[str, str]) -> str:
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return _base64url(hashlib.sha256(canonical).digest())


def key_id(public_key: str) -> str:
    """The ``kid`` of a ``whpk_`` public key: its JWK thumbprint (RFC 7638, SHA-256, base64url).

    Derived from the key alone, so a receiver can compute it from the ``whpk_`` string it was given.
    """
    return public_jwk(public_key)["kid"]


def public_key_from_jwk(jwk: dict[str, Any]) -> str | None:
    """The ``whpk_`` public key of an ed25519 JWK, or None for a JWK of another kind (RSA, EC...).

    Raises ``ValueError`` for an ed25519 JWK whose ``x`` is not 32 bytes of base64url.
    """
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
        return None
    x = jwk.get("x")
    if not isinstance(x, str):
        raise ValueError("An Ed25519 JWK needs an 'x' member.")
    try:
        raw = base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("The 'x' member of an Ed25519 JWK is not base64url.") from None
    if len(raw) != ED25519_KEY_BYTES:
        raise ValueError(f"The 'x' member of an Ed25519 JWK must encode 32 bytes; this one has {len(raw)}.")
    return encode_public_key(raw)

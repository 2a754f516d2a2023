"""Standard Webhooks v1 signatures (https://www.standardwebhooks.com).

A request carries ``webhook-id`` (the message id, stable across retries), ``webhook-timestamp``
(Unix seconds of this attempt) and ``webhook-signature``: one ``v1,<base64 HMAC-SHA256>`` per
signing secret, space-separated, so a receiver that knows any one of the secrets accepts it.
The signed content is ``f"{msg_id}.{timestamp}."`` followed by the exact body bytes sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets as _secrets
from collections.abc import Iterable
from datetime import datetime

SECRET_PREFIX = "whsec_"
SIGNATURE_VERSION = "v1"
SECRET_BYTES = 32

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
    """One ``v1,<base64>`` signature of ``body`` for message ``msg_id`` sent at ``timestamp``."""
    check_message_id(msg_id)
    digest = signature_digest(secret_key(secret), msg_id, timestamp, body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def signature_header(secrets: Secret | Iterable[Secret], msg_id: str, timestamp: Timestamp, body: bytes) -> str:
    """The ``webhook-signature`` value: one signature per secret, space-separated, in order."""
    if isinstance(secrets, str | bytes):
        secrets = [secrets]
    signatures = [sign(secret, msg_id, timestamp, body) for secret in secrets]
    if not signatures:
        raise ValueError("At least one signing secret is needed to sign a webhook.")
    return " ".join(signatures)


def webhook_headers(
    msg_id: str, timestamp: Timestamp, body: bytes, secrets: Secret | Iterable[Secret]
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp_seconds(timestamp)),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
    }

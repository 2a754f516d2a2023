"""Verifying incoming Standard Webhooks in a Django project that *receives* them.

Use :func:`verify` anywhere, or decorate a view with :func:`verify_webhook`. Both accept the
``webhook-*`` headers and, as a fallback, the ``svix-*`` names Svix sends, and both verify
``v1`` signatures with ``whsec_`` secrets and ``v1a`` signatures with ``whpk_`` public keys or a
published key set (``{"keys": [JWK, ...]}``). See docs/receiving.md and docs/authentication.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import wraps
from typing import Any, NamedTuple

from asgiref.sync import iscoroutinefunction
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt

from .exceptions import SignatureVerificationError
from .signing import (
    ASYMMETRIC_SIGNATURE_VERSION,
    ED25519_SIGNATURE_BYTES,
    PUBLIC_KEY_PREFIX,
    SIGNATURE_VERSION,
    decode_public_key,
    is_private_key,
    public_key_from_jwk,
    secret_key,
    signature_digest,
    signed_content,
    timestamp_seconds,
)

#: Seconds a timestamp may differ from the receiver's clock (the spec's 5 minutes).
DEFAULT_TOLERANCE = 300
TEXT = "text/plain; charset=utf-8"
#: Signatures of one version looked at, at most: a sender signs with one secret or key and, during
#: rotations, a few old ones (django-webhooks keeps 10); the rest of a longer header is ignored, so a
#: forged header cannot make a receiver run thousands of ed25519 verifications.
MAX_SIGNATURES = 32

#: What verifies: a ``whsec_`` secret (or its raw bytes), a ``whpk_`` public key, or a key set
#: document (``{"keys": [JWK, ...]}``, as django-webhooks publishes them).
VerificationKey = str | bytes | Mapping[str, Any]
VerificationKeys = VerificationKey | Iterable[VerificationKey]
SecretSource = VerificationKeys | Callable[[HttpRequest], VerificationKeys]


class _Keys(NamedTuple):
    """What :func:`verify` checks signatures with: HMAC keys (``v1``) and ed25519 public keys (``v1a``)."""

    hmac: list[bytes]
    ed25519: list[Ed25519PublicKey]


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    lowered = {}
    for name, value in headers.items():
        name = name.lower()
        if name.startswith("http_"):
            name = name[5:].replace("_", "-")
        lowered[name] = value
    return lowered


def _header(headers: dict[str, str], name: str) -> str:
    value = headers.get(f"webhook-{name}") or headers.get(f"svix-{name}")
    if not value:
        raise SignatureVerificationError(f"Missing webhook-{name} header.")
    return value.strip()


def _key_set_keys(key_set: Mapping[str, Any], now: int | None) -> list[Ed25519PublicKey]:
    """The ed25519 keys of a key set document, without those whose ``expires`` has passed at ``now``.

    Keys of other kinds (RSA, EC) are skipped; a document without a ``keys`` list is a ``ValueError``.
    """
    entries = key_set.get("keys")
    if not isinstance(entries, list):
        raise ValueError('A key set is a mapping with a "keys" list of JWKs.')
    keys = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ValueError("Each entry of a key set's keys must be a JWK (a mapping).")
        public_key = public_key_from_jwk(dict(entry))
        if public_key is None or (now is not None and _expired(entry.get("expires"), now)):
            continue
        keys.append(decode_public_key(public_key))
    return keys


def _expired(expires: object, now: int) -> bool:
    if expires is None:
        return False
    if not isinstance(expires, str):
        raise ValueError("A key set entry's expires must be an ISO 8601 date-time or null.")
    try:
        moment = datetime.fromisoformat(expires)
    except ValueError:
        raise ValueError(f"A key set entry's expires is not an ISO 8601 date-time: {expires!r}.") from None
    if moment.tzinfo is None:
        raise ValueError("A key set entry's expires must carry a UTC offset.")
    return timestamp_seconds(moment) <= now


def _keys(source: VerificationKeys, now: int | None = None) -> _Keys:
    """Parse secrets, public keys and key sets; ``now`` drops key set entries expired by then."""
    if isinstance(source, str | bytes | Mapping):
        source = [source]
    found = _Keys([], [])
    count = 0
    for key in source:
        count += 1
        if isinstance(key, Mapping):
            found.ed25519.extend(_key_set_keys(key, now))
        elif isinstance(key, str) and key.startswith(PUBLIC_KEY_PREFIX):
            found.ed25519.append(decode_public_key(key))
        elif is_private_key(key):
            raise ValueError("Verify v1a signatures with the public key (whpk_...), never the private key (whsk_...).")
        else:
            found.hmac.append(secret_key(key))
    if not count:
        raise ValueError("verify() needs at least one secret or public key.")
    return found


def _matches(keys: _Keys, signatures: dict[str, list[bytes]], msg_id: str, timestamp: int, body: bytes) -> bool:
    matched = False
    for key in keys.hmac:
        expected = signature_digest(key, msg_id, timestamp, body)
        for signature in signatures[SIGNATURE_VERSION]:
            matched |= hmac.compare_digest(expected, signature)
    content = signed_content(msg_id, timestamp, body)
    for public_key in keys.ed25519:
        for signature in signatures[ASYMMETRIC_SIGNATURE_VERSION]:
            try:
                public_key.verify(signature, content)
            except InvalidSignature:
                continue
            matched = True
    return matched


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret_or_secrets: VerificationKeys,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | float | datetime | None = None,
) -> None:
    """Check a received webhook; raise :class:`SignatureVerificationError` saying why it fails.

    ``headers`` is ``request.headers``, ``request.META`` or a plain dict (names are matched
    case-insensitively); ``body`` is the raw request body. ``secret_or_secrets`` is one key or a
    list of them: ``whsec_...`` secrets check ``v1`` signatures, ``whpk_...`` public keys and key
    set documents (``{"keys": [JWK, ...]}``, whose entries past their ``expires`` are left out)
    check ``v1a`` signatures. The webhook is accepted when its timestamp is within ``tolerance``
    seconds of ``now`` and any signature of those versions matches any of the keys; other
    versions are ignored. A ``whsk_`` private key is refused (``ValueError``): it never belongs
    on a receiver.
    """
    current = timestamp_seconds(now) if now is not None else int(time.time())
    keys = _keys(secret_or_secrets, current)
    found = _lowered(headers)
    msg_id = _header(found, "id")
    raw_timestamp = _header(found, "timestamp")
    signature_header = _header(found, "signature")

    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 18:
        raise SignatureVerificationError("Invalid webhook-timestamp header: expected integer Unix seconds.")
    timestamp = int(raw_timestamp)
    if timestamp < current - tolerance:
        raise SignatureVerificationError(f"Webhook timestamp is too old (more than {tolerance} seconds ago).")
    if timestamp > current + tolerance:
        raise SignatureVerificationError(f"Webhook timestamp is too new (more than {tolerance} seconds ahead).")

    wanted = [SIGNATURE_VERSION] * bool(keys.hmac) + [ASYMMETRIC_SIGNATURE_VERSION] * bool(keys.ed25519)
    received: dict[str, list[bytes]] = {SIGNATURE_VERSION: [], ASYMMETRIC_SIGNATURE_VERSION: []}
    for entry in signature_header.split():
        version, _, encoded = entry.partition(",")
        if version not in wanted or len(received[version]) >= MAX_SIGNATURES:
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        if version == ASYMMETRIC_SIGNATURE_VERSION and len(signature) != ED25519_SIGNATURE_BYTES:
            continue
        received[version].append(signature)
    if not any(received.values()):
        if not wanted:
            raise SignatureVerificationError("No matching signature: no current ed25519 key in the key set.")
        raise SignatureVerificationError(f"No {' or '.join(wanted)} signature in the webhook-signature header.")

    if isinstance(body, str):
        body = body.encode("utf-8")
    if not _matches(keys, received, msg_id, timestamp, body):
        raise SignatureVerificationError("No matching signature: wrong secret or key, or modified body.")


def verify_webhook(
    secret: SecretSource | None = None, *, tolerance: int = DEFAULT_TOLERANCE
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view so it runs only for correctly signed webhooks.

    ``secret`` is what :func:`verify` takes: a ``whsec_...`` secret, a ``whpk_...`` public key,
    a key set document, or a list of them (during a rotation or a move from ``v1`` to ``v1a``);
    or a callable ``(request) -> any of those`` (for a key per sender, or a key set your code
    fetched and cached; returning ``None`` or ``[]`` rejects the request). A failing request gets
    a ``400`` with the reason as plain text and the view is not called. The view is CSRF-exempt.
    Works with sync and async function views; wrap class-based views with ``method_decorator``.
    """
    if secret is None:
        raise TypeError("verify_webhook() needs secret=: a string, a list of strings or a callable.")
    if not callable(secret):
        if not isinstance(secret, str | bytes | Mapping):
            secret = list(secret)
        _keys(secret)  # a malformed secret or key fails here, when the view is defined

    def rejection(request: HttpRequest) -> HttpResponse | None:
        secrets = secret(request) if callable(secret) else secret
        if not secrets:
            return HttpResponseBadRequest("No webhook secret is configured for this request.", content_type=TEXT)
        try:
            verify(request.headers, request.body, secrets, tolerance=tolerance)
        except SignatureVerificationError as exc:
            return HttpResponseBadRequest(str(exc), content_type=TEXT)
        return None

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        if iscoroutinefunction(view):

            @wraps(view)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                response = rejection(request)
                if response is not None:
                    return response
                return await view(request, *args, **kwargs)

            return csrf_exempt(async_wrapper)

        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            response = rejection(request)
            if response is not None:
                return response
            return view(request, *args, **kwargs)

        return csrf_exempt(wrapper)

    return decorator

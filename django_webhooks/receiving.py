"""Verifying incoming Standard Webhooks in a Django project that *receives* them.

Use :func:`verify` anywhere, or decorate a view with :func:`verify_webhook`. Both accept the
``webhook-*`` headers and, as a fallback, the ``svix-*`` names Svix sends. See docs/receiving.md.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.views.decorators.csrf import csrf_exempt

from .exceptions import SignatureVerificationError
from .signing import SIGNATURE_VERSION, Secret, secret_key, signature_digest, timestamp_seconds

#: Seconds a timestamp may differ from the receiver's clock (the spec's 5 minutes).
DEFAULT_TOLERANCE = 300
TEXT = "text/plain; charset=utf-8"

SecretSource = Secret | Iterable[Secret] | Callable[[HttpRequest], Secret | Iterable[Secret]]


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


def _keys(secret_or_secrets: Secret | Iterable[Secret]) -> list[bytes]:
    if isinstance(secret_or_secrets, str | bytes):
        secret_or_secrets = [secret_or_secrets]
    keys = [secret_key(secret) for secret in secret_or_secrets]
    if not keys:
        raise ValueError("verify() needs at least one secret.")
    return keys


def verify(
    headers: Mapping[str, str],
    body: bytes,
    secret_or_secrets: Secret | Iterable[Secret],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: int | float | datetime | None = None,
) -> None:
    """Check a received webhook; raise :class:`SignatureVerificationError` saying why it fails.

    ``headers`` is ``request.headers``, ``request.META`` or a plain dict (names are matched
    case-insensitively); ``body`` is the raw request body. The webhook is accepted when its
    timestamp is within ``tolerance`` seconds of ``now`` and any ``v1`` signature matches any
    of the secrets (``whsec_...``); other signature versions are ignored.
    """
    keys = _keys(secret_or_secrets)
    found = _lowered(headers)
    msg_id = _header(found, "id")
    raw_timestamp = _header(found, "timestamp")
    signature_header = _header(found, "signature")

    if not raw_timestamp.isascii() or not raw_timestamp.isdigit() or len(raw_timestamp) > 18:
        raise SignatureVerificationError("Invalid webhook-timestamp header: expected integer Unix seconds.")
    timestamp = int(raw_timestamp)
    current = timestamp_seconds(now) if now is not None else int(time.time())
    if timestamp < current - tolerance:
        raise SignatureVerificationError(f"Webhook timestamp is too old (more than {tolerance} seconds ago).")
    if timestamp > current + tolerance:
        raise SignatureVerificationError(f"Webhook timestamp is too new (more than {tolerance} seconds ahead).")

    received = []
    for entry in signature_header.split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            received.append(base64.b64decode(encoded, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not received:
        raise SignatureVerificationError("No v1 signature in the webhook-signature header.")

    if isinstance(body, str):
        body = body.encode("utf-8")
    matched = False
    for key in keys:
        expected = signature_digest(key, msg_id, timestamp, body)
        for signature in received:
            matched |= hmac.compare_digest(expected, signature)
    if not matched:
        raise SignatureVerificationError("No matching signature: wrong secret or modified body.")


def verify_webhook(
    secret: SecretSource | None = None, *, tolerance: int = DEFAULT_TOLERANCE
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a view so it runs only for correctly signed webhooks.

    ``secret`` is a ``whsec_...`` string, a list of them (during a rotation), or a callable
    ``(request) -> secret or list`` (for a secret per sender; returning ``None`` or ``[]``
    rejects the request). A failing request gets a ``400`` with the reason as plain text and
    the view is not called. The view is CSRF-exempt.
    Works with sync and async function views; wrap class-based views with ``method_decorator``.
    """
    if secret is None:
        raise TypeError("verify_webhook() needs secret=: a string, a list of strings or a callable.")
    if not callable(secret):
        secret = _keys(secret)

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

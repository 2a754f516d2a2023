"""OAuth2 client credentials (RFC 6749 section 4.4): access tokens for receivers that want them.

A token is requested from the receiver's token endpoint through the :class:`~django_webhooks.delivery.transport.Transport`
(the same SSRF guard, deadline and size caps as a webhook; the endpoint's TLS client certificate
too), authenticating the client with ``client_secret_basic``, ``client_secret_post`` or
``private_key_jwt`` (a JWT signed with the client's key, RFC 7523 section 2.2, with its ``kid``).
``scope``, ``audience`` and ``resource`` (RFC 8707) are sent when set.

Tokens are kept encrypted in :class:`~django_webhooks.models.OAuthToken`, one per subscription,
shared by every worker of the cluster, and in each process's memory: a request reads the
database only when its process has no usable token, and asks the token endpoint only when the
database has none either (under a lock on the subscription's auth row, so that the workers of
a cluster ask once). A token is used until :func:`usable_until`, a little before its
``expires_in``; a token the receiver refused (401) is replaced once (:func:`access_token` with
``rejected``).

This is the one place a sender thread uses the database: only when a token must be read or
replaced, on a connection it closes again.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, quote_plus

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from django.db import connections, router, transaction
from django.utils import timezone

from .. import crypto
from ..exceptions import WebhooksError
from ..models import OAuthClientAuth, OAuthToken, ReceiverAuth
from ..receiver_auth import OAuthClient, redact_secrets
from .targets import loggable_url
from .transport import get_transport

#: The ``client_assertion_type`` of RFC 7523 section 2.2.
JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Seconds a client assertion is valid.
ASSERTION_LIFETIME = 60
#: A token is replaced this long before it expires at most (less for short-lived tokens: a fifth of their life).
REFRESH_MARGIN_SECONDS = 60
#: Lifetime assumed when the token endpoint does not say (``expires_in`` is only RECOMMENDED).
DEFAULT_LIFETIME_SECONDS = 300
#: Longest error text kept from a token endpoint's answer.
MAX_ERROR_TEXT = 200


class TokenError(WebhooksError):
    """The token endpoint gave no usable token; the message says why (never a secret)."""


@dataclass(frozen=True)
class _Cached:
    fingerprint: str
    token: str
    usable_until: datetime


_memory: dict[int, _Cached] = {}
_memory_lock = threading.Lock()
_fetch_locks: dict[int, threading.Lock] = {}


def usable_until(obtained_at: datetime, expires_in: float) -> datetime:
    """When a token obtained at ``obtained_at`` and valid for ``expires_in`` seconds is replaced."""
    margin = min(REFRESH_MARGIN_SECONDS, expires_in / 5)
    return obtained_at + timedelta(seconds=max(0.0, expires_in - margin))


def access_token(client: OAuthClient, rejected: str | None = None) -> str:
    """A usable access token for ``client``: cached, or obtained from its token endpoint now.

    ``rejected``: a token the receiver refused; it is not returned again. Raises
    :class:`TokenError` when the token endpoint fails.
    """
    cached = _remembered(client, rejected)
    if cached is not None:
        return cached
    with _memory_lock:
        fetch_lock = _fetch_locks.setdefault(client.receiver_auth_id, threading.Lock())
    with fetch_lock:  # one request per process; the row lock below makes it one per cluster
        cached = _remembered(client, rejected)
        if cached is not None:
            return cached
        with _database():
            token, until = _shared_token(client, rejected)
        with _memory_lock:
            _memory[client.receiver_auth_id] = _Cached(client.fingerprint, token, until)
        return token


def forget_tokens() -> None:
    """Drop the tokens this process remembers (the shared ones stay in the database)."""
    with _memory_lock:
        _memory.clear()


def _remembered(client: OAuthClient, rejected: str | None) -> str | None:
    with _memory_lock:
        cached = _memory.get(client.receiver_auth_id)
    if cached is None or cached.fingerprint != client.fingerprint or cached.token == rejected:
        return None
    return cached.token if timezone.now() < cached.usable_until else None


@contextmanager
def _database() -> Iterator[None]:
    """The database connection of this thread; a sender thread's is closed again afterwards."""
    connection = connections[router.db_for_write(OAuthToken)]
    opened = connection.connection is None
    try:
        yield
    finally:
        if opened and not connection.in_atomic_block:
            connection.close()


def _shared_token(client: OAuthClient, rejected: str | None) -> tuple[str, datetime]:
    with transaction.atomic(using=router.db_for_write(OAuthToken)):
        list(ReceiverAuth.objects.select_for_update().filter(pk=client.receiver_auth_id).values_list("pk"))
        row = OAuthToken.objects.filter(receiver_auth_id=client.receiver_auth_id).first()
        if row is not None and row.fingerprint == client.fingerprint:
            token = crypto.decrypt_secret(row.encrypted)
            until = usable_until(row.obtained_at, (row.expires_at - row.obtained_at).total_seconds())
            if token != rejected and timezone.now() < until:
                return token, until
        obtained_at = timezone.now()
        token, expires_in = request_token(client)
        OAuthToken.objects.update_or_create(
            receiver_auth_id=client.receiver_auth_id,
            defaults={
                "fingerprint": client.fingerprint,
                "encrypted": crypto.encrypt_secret(token),
                "obtained_at": obtained_at,
                "expires_at": obtained_at + timedelta(seconds=expires_in),
            },
        )
        return token, usable_until(obtained_at, expires_in)


# -- the token request -------------------------------------------------------------------------------


def token_request(client: OAuthClient, now: float | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The form fields and headers of a client credentials token request for ``client``."""
    fields = {"grant_type": "client_credentials"}
    headers: dict[str, str] = {}
    for name in ("scope", "audience", "resource"):
        value = getattr(client, name)
        if value:
            fields[name] = value
    if client.client_auth == OAuthClientAuth.CLIENT_SECRET_BASIC:
        # RFC 6749 section 2.3.1: each part form-encoded before they are joined.
        pair = f"{quote(client.client_id, safe='')}:{quote(client.client_secret, safe='')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
    elif client.client_auth == OAuthClientAuth.CLIENT_SECRET_POST:
        fields["client_id"] = client.client_id
        fields["client_secret"] = client.client_secret
    else:
        fields["client_id"] = client.client_id
        fields["client_assertion_type"] = JWT_BEARER_ASSERTION
        fields["client_assertion"] = client_assertion(client, time.time() if now is None else now)
    return fields, headers


def _sent_secrets(client: OAuthClient, fields: dict[str, str], headers: dict[str, str]) -> list[str]:
    """The secrets a token request carries, in every form a token endpoint may quote them back."""
    secret = client.client_secret
    secrets = [secret, quote(secret, safe=""), quote_plus(secret), fields.get("client_assertion", "")]
    for value in headers.values():
        secrets += [value, value.removeprefix("Basic ")]
    return [text for text in secrets if text]


def request_token(client: OAuthClient) -> tuple[str, float]:
    """Ask ``client``'s token endpoint for a token; return it and its lifetime in seconds.

    The error messages quote what the endpoint answered, with the request's secrets redacted
    (an endpoint may echo them back in its ``error_description``).
    """
    fields, headers = token_request(client)
    result = get_transport().post_form(client.token_url, fields, headers, tls=client.tls)
    where = loggable_url(client.token_url)
    secrets = _sent_secrets(client, fields, headers)
    if result.status is None:
        raise TokenError(f"Token endpoint {where}: {redact_secrets(result.error_message, secrets)}")
    try:
        answer = json.loads(result.body) if result.body else None
    except ValueError:
        answer = None
    if not result.succeeded:
        detail = ""
        if isinstance(answer, dict) and isinstance(answer.get("error"), str):
            description = answer.get("error_description")
            detail = f": {answer['error']}" + (f" ({description})" if isinstance(description, str) else "")
        detail = redact_secrets(detail, secrets)[:MAX_ERROR_TEXT]
        raise TokenError(f"Token endpoint {where} answered HTTP {result.status}{detail}.")
    if not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str) or not answer["access_token"]:
        raise TokenError(f"Token endpoint {where} answered without an access_token.")
    token_type = answer.get("token_type")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        quoted = redact_secrets(str(token_type), secrets)[:40]
        raise TokenError(f"Token endpoint {where} issued a token of type {quoted!r}, not Bearer.")
    token = answer["access_token"]
    if any(ord(char) < 0x21 or ord(char) > 0x7E for char in token):
        raise TokenError(f"Token endpoint {where} issued a token that cannot be sent in a header.")
    expires_in = answer.get("expires_in", DEFAULT_LIFETIME_SECONDS)
    try:
        lifetime = float(expires_in)
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME_SECONDS
    return token, max(lifetime, 0.0)


# -- private_key_jwt -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _algorithm(key: Any) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise TokenError("The private_key_jwt key is not an RSA, EC or Ed25519 key.")


def _sign(key: Any, algorithm: str, data: bytes) -> bytes:
    if algorithm == "RS256":
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if algorithm == "EdDSA":
        return key.sign(data)
    digest = {"ES256": hashes.SHA256(), "ES384": hashes.SHA384(), "ES512": hashes.SHA512()}[algorithm]
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # JWS (RFC 7518 section 3.4): r || s


def client_assertion(client: OAuthClient, now: float) -> str:
    """A signed JWT authenticating ``client`` at its token endpoint (RFC 7523 section 3): issuer
    and subject the client id, audience the token endpoint, valid :data:`ASSERTION_LIFETIME` seconds."""
    key = serialization.load_pem_private_key(client.private_key.encode("utf-8"), password=None)
    algorithm = _algorithm(key)
    header: dict[str, str] = {"alg": algorithm, "typ": "JWT"}
    if client.key_id:
        header["kid"] = client.key_id
    issued = int(now)
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": client.token_url,
        "jti": secrets.token_urlsafe(18),
        "iat": issued,
        "exp": issued + ASSERTION_LIFETIME,
    }
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    return signing_input + "." + _b64(_sign(key, algorithm, signing_input.encode("ascii")))

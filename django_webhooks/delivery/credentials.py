"""A webhook request with the receiver's authentication: header credential, OAuth2 token, client certificate.

:func:`send_authenticated` is what a sender thread calls (:mod:`django_webhooks.delivery.lanes`):
it adds the subscription's credential header (:mod:`django_webhooks.receiver_auth`), obtaining
an OAuth2 access token when needed (:mod:`django_webhooks.delivery.oauth`), sends with the
endpoint's TLS client settings, and, when the receiver answers 401 to an OAuth2 token, replaces
the token once and sends again: the answer to that second request is the attempt's. A token
endpoint that fails makes an attempt of error class ``auth`` with nothing sent to the receiver.

The headers it returns are those to store: the credential header's value is redacted
(:func:`~django_webhooks.delivery.headers.redact_credentials`), whatever its name. The result's
body, headers and error message are stored and shown too, so a receiver that echoes the request
back (a debugging endpoint, an error page quoting the ``Authorization`` header) has the
credentials of the request redacted from them (:func:`~django_webhooks.receiver_auth.redact_secrets`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Protocol

from ..models import ErrorClass
from ..receiver_auth import Credentials, redact_secrets
from . import oauth
from .headers import redact_credentials
from .transport import ClientTLS, TransportResult


class WebhookTransport(Protocol):
    """What sends a webhook request (:class:`~django_webhooks.delivery.transport.Transport`)."""

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> TransportResult: ...


def _send(
    transport: WebhookTransport, url: str, body: bytes, headers: dict[str, str], tls: ClientTLS | None
) -> TransportResult:
    if tls is None:
        return transport.send(url, body, headers)
    return transport.send(url, body, headers, tls=tls)  # type: ignore[call-arg]


def _redacted(result: TransportResult, secrets: Iterable[str | None]) -> TransportResult:
    texts = [secret for secret in secrets if secret]
    return replace(
        result,
        body=redact_secrets(result.body, texts),
        headers={name: redact_secrets(value, texts) for name, value in result.headers.items()},
        error_message=redact_secrets(result.error_message, texts),
    )


def send_authenticated(
    transport: WebhookTransport, url: str, body: bytes, headers: dict[str, str], credentials: Credentials | None
) -> tuple[TransportResult, dict[str, str]]:
    """Send a webhook with ``credentials``; return the result and the headers sent, credentials redacted."""
    if credentials is None:
        return _send(transport, url, body, headers, None), headers
    client = credentials.oauth
    token = None
    if client is not None:
        try:
            token = oauth.access_token(client)
        except oauth.TokenError as exc:
            return TransportResult(error_class=ErrorClass.AUTH.value, error_message=str(exc)), headers
    auth_headers = credentials.headers(token)
    sent = {**headers, **auth_headers}
    result = _send(transport, url, body, sent, credentials.tls)
    sent_tokens = [token]
    if client is not None and result.status == 401:
        try:
            token = oauth.access_token(client, rejected=token)
        except oauth.TokenError as exc:
            message = f"HTTP 401 with the cached token, and no new one: {exc}"
            return TransportResult(error_class=ErrorClass.AUTH.value, error_message=message), redact_credentials(
                sent, auth_headers
            )
        auth_headers = credentials.headers(token)
        sent = {**headers, **auth_headers}
        result = _send(transport, url, body, sent, credentials.tls)
        sent_tokens.append(token)
    secrets = (*credentials.secrets, *auth_headers.values(), *sent_tokens)
    return _redacted(result, secrets), redact_credentials(sent, auth_headers)

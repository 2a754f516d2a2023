"""HTTP transport: one pooled session per worker thread, SSRF-safe, bounded in time and size.

Every request resolves its target once through :func:`~django_webhooks.targets.resolve_target`
and connects to a vetted address, keeping the original host for the ``Host`` header, TLS SNI
and certificate checks (:class:`VettedAddressAdapter`). Redirects are never followed, the whole
exchange has a wall-clock deadline (``TIMEOUT``), and at most ``MAX_RESPONSE_BYTES`` of the
response body are read before the connection is dropped.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from requests.adapters import HTTPAdapter
from urllib3.util.ssl_ import create_urllib3_context

from . import __version__
from .conf import webhooks_settings
from .exceptions import BlockedTarget
from .models import ErrorClass
from .targets import resolve_target

#: Headers a subscription's custom headers cannot set or override (compared case-insensitively):
#: ours, and framing and hop-by-hop headers, which would corrupt the request or smuggle a second one.
PROTECTED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "cookie",
    }
)
#: Prefix of the Standard Webhooks headers; every name with it is ours.
PROTECTED_HEADER_PREFIX = "webhook-"
#: RFC 9110 field-name characters.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Longest custom header name and value a subscription may set.
MAX_HEADER_NAME_LENGTH = 100
MAX_HEADER_VALUE_LENGTH = 1000

_READ_CHUNK = 8192


@dataclass
class TransportResult:
    """What one HTTP request to a webhook target produced."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    duration_ms: int = 0
    error_class: str = ErrorClass.NONE.value
    error_message: str = ""

    @property
    def succeeded(self) -> bool:
        return not self.error_class and self.status is not None and 200 <= self.status < 300


def user_agent() -> str:
    return webhooks_settings.USER_AGENT or f"django-webhooks/{__version__}"


def is_protected_header(name: str) -> bool:
    """Whether ``name`` is a header only django-webhooks sets (see :data:`PROTECTED_HEADERS`)."""
    lowered = name.lower()
    return lowered in PROTECTED_HEADERS or lowered.startswith(PROTECTED_HEADER_PREFIX)


def validate_custom_headers(headers: Any) -> None:
    """Refuse custom headers a subscription may not send; the admin form and the API use it.

    Raises :class:`~django.core.exceptions.ValidationError` with one message per refused header.
    """
    if not isinstance(headers, dict):
        raise ValidationError(_("Headers must be a JSON object of names to values."), code="invalid_headers")
    limit = webhooks_settings.MAX_CUSTOM_HEADERS
    if len(headers) > limit:
        raise ValidationError(
            _("At most %(limit)d custom headers are allowed."), code="too_many_headers", params={"limit": limit}
        )
    errors: list[ValidationError] = []
    seen: set[str] = set()
    for name, value in headers.items():
        problem = _header_problem(name, value, seen)
        if problem is not None:
            errors.append(problem)
        seen.add(name.lower())
    if errors:
        raise ValidationError(errors)


def _header_problem(name: str, value: Any, seen: set[str]) -> ValidationError | None:
    params = {"name": name}
    if len(name) > MAX_HEADER_NAME_LENGTH:
        return ValidationError(
            _("Header names have at most %(limit)d characters: %(name)s"),
            code="invalid_header",
            params={**params, "limit": MAX_HEADER_NAME_LENGTH},
        )
    if not HEADER_NAME_RE.fullmatch(name):
        return ValidationError(_("%(name)r is not a valid header name."), code="invalid_header", params=params)
    if is_protected_header(name):
        return ValidationError(
            _("The header %(name)s is set by django-webhooks and cannot be overridden."),
            code="protected_header",
            params=params,
        )
    if name.lower() in seen:
        return ValidationError(
            _("%(name)s is listed twice (header names are case-insensitive)."), code="duplicate_header", params=params
        )
    if not isinstance(value, str):
        return ValidationError(_("The value of %(name)s must be a string."), code="invalid_header", params=params)
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        return ValidationError(
            _("The value of %(name)s has more than %(limit)d characters."),
            code="invalid_header",
            params={**params, "limit": MAX_HEADER_VALUE_LENGTH},
        )
    if _unsendable(value):
        return ValidationError(
            _("The value of %(name)s contains a line break or a NUL character."), code="invalid_header", params=params
        )
    return None


def request_headers(subscription_headers: dict[str, Any] | None, signed_headers: dict[str, str]) -> dict[str, str]:
    """Merge a subscription's custom headers with ours; protected names (:func:`is_protected_header`) are ours.

    Custom headers with names or values that cannot be sent (line breaks) are dropped.
    """
    headers: dict[str, str] = {}
    for name, value in (subscription_headers or {}).items():
        name, value = str(name).strip(), str(value)
        if not name or is_protected_header(name) or _unsendable(name) or _unsendable(value):
            continue
        headers[name] = value
    headers.update(signed_headers)
    headers["User-Agent"] = user_agent()
    headers["Content-Type"] = "application/json"
    return headers


def _unsendable(text: str) -> bool:
    return any(char in text for char in "\r\n\0")


class VettedAddressAdapter(HTTPAdapter):
    """Connects to an address :func:`resolve_target` vetted, never to a second DNS answer.

    The target is resolved once per request; when connecting to one vetted address fails
    (nothing was sent yet), the next one is tried within the same time budget. Connection pools
    are keyed by (scheme, vetted address, port, host name), so keep-alive connections are reused
    per target host. For https, SNI and the certificate check use the URL's host name while the
    TCP connection goes to the vetted address. Proxies are never used: they would bypass the
    address check.
    """

    def __init__(self, **kwargs: Any) -> None:
        self._ssl_context = create_urllib3_context()
        self._ssl_context.load_verify_locations(requests.certs.where())
        self._dialling = threading.local()
        super().__init__(**kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        target = resolve_target(request.url or "")
        started = time.monotonic()
        attempt_timeout = timeout
        try:
            for index, address in enumerate(target.addresses):
                self._dialling.current = (target, address)
                try:
                    return super().send(request, stream, attempt_timeout, verify, cert, proxies)
                except requests.ConnectionError as exc:
                    if index + 1 == len(target.addresses) or not _never_connected(exc):
                        raise
                    attempt_timeout = _shrink(timeout, time.monotonic() - started)
                    if attempt_timeout is _BUDGET_SPENT:
                        raise
        finally:
            self._dialling.current = None
        raise AssertionError("unreachable: resolve_target returns at least one address")

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: bool | str,
        proxies: dict[str, str] | None = None,
        cert: Any = None,
    ) -> urllib3.HTTPConnectionPool:
        dialling = getattr(self._dialling, "current", None)
        if dialling is None:
            target = resolve_target(request.url or "")
            dialling = (target, target.addresses[0])
        target, address = dialling
        host_params, pool_kwargs = self.build_connection_pool_key_attributes(request, verify, cert)
        if target.scheme == "https":
            if verify is True:
                pool_kwargs["ssl_context"] = self._ssl_context
            pool_kwargs["server_hostname"] = target.host
            pool_kwargs["assert_hostname"] = target.host
        host_params.update(host=address, port=target.port, scheme=target.scheme)
        return self.poolmanager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request: requests.PreparedRequest, proxies: Any) -> str:
        return request.path_url

    def add_headers(self, request: requests.PreparedRequest, **kwargs: Any) -> None:
        request.headers["Host"] = urlsplit(request.url).netloc


def _never_connected(exc: requests.ConnectionError) -> bool:
    """Whether the request failed while connecting, so nothing reached the target."""
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, urllib3.exceptions.ConnectTimeoutError)


_BUDGET_SPENT = object()


def _shrink(timeout: Any, elapsed: float) -> Any:
    """``timeout`` with its total budget reduced by ``elapsed`` seconds (``_BUDGET_SPENT`` if none is left)."""
    if not isinstance(timeout, urllib3.Timeout) or not isinstance(timeout.total, int | float):
        return timeout
    left = timeout.total - elapsed
    if left <= 0:
        return _BUDGET_SPENT
    connect = timeout.connect_timeout
    return urllib3.Timeout(
        connect=min(connect, left) if isinstance(connect, int | float) else left, read=left, total=left
    )


class _DeadlineExceeded(Exception):
    pass


class Transport:
    """Sends webhook requests over one pooled :class:`requests.Session` (use :func:`get_transport`)."""

    def __init__(self) -> None:
        self.session = requests.Session()
        self.session.trust_env = False
        self.adapter = VettedAddressAdapter(pool_connections=64, pool_maxsize=4, max_retries=0)
        self.session.mount("http://", self.adapter)
        self.session.mount("https://", self.adapter)

    def close(self) -> None:
        self.session.close()

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> TransportResult:
        """POST ``body`` to ``url``; network problems come back as ``error_class``, never raised."""
        started = time.monotonic()
        deadline = started + float(webhooks_settings.TIMEOUT)
        result = TransportResult()
        headers = {"User-Agent": user_agent(), "Content-Type": "application/json", **headers}
        try:
            self._exchange(url, body, headers, deadline, result)
        except BlockedTarget as exc:
            result.error_class, result.error_message = exc.error_class, str(exc)
        except requests.ConnectTimeout:
            result.error_class = ErrorClass.TIMEOUT.value
            result.error_message = f"Could not connect within {webhooks_settings.CONNECT_TIMEOUT:g} s."
        except (_DeadlineExceeded, requests.Timeout, urllib3.exceptions.TimeoutError):
            result.error_class = ErrorClass.TIMEOUT.value
            result.error_message = f"No complete response within {webhooks_settings.TIMEOUT:g} s."
        except requests.exceptions.SSLError as exc:
            result.error_class, result.error_message = ErrorClass.TLS.value, f"TLS error: {_root_cause(exc)}"
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.InvalidHeader,
        ) as exc:
            result.error_class, result.error_message = ErrorClass.INVALID_TARGET.value, str(exc)
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            result.error_class, result.error_message = (
                ErrorClass.CONNECTION.value,
                f"Connection error: {_root_cause(exc)}",
            )
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if result.status is not None and not result.error_class:
            _classify_status(result)
        return result

    def _exchange(
        self, url: str, body: bytes, headers: dict[str, str], deadline: float, result: TransportResult
    ) -> None:
        total = float(webhooks_settings.TIMEOUT)
        timeout = urllib3.Timeout(connect=float(webhooks_settings.CONNECT_TIMEOUT), read=total, total=total)
        request = self.session.prepare_request(requests.Request("POST", url, data=body, headers=headers))
        # Straight to the adapter: Session.send would read a redirect's whole body to follow it,
        # and would store cookies shared between different owners' targets.
        adapter = self.session.get_adapter(request.url or url)
        response = adapter.send(
            request, stream=True, timeout=timeout, verify=self.session.verify, cert=self.session.cert, proxies={}
        )
        result.status = response.status_code
        result.headers = dict(response.headers)
        raw = response.raw
        complete = False
        try:
            content, complete = _read_capped(raw, int(webhooks_settings.MAX_RESPONSE_BYTES), deadline)
            result.body = content.decode(response.encoding or "utf-8", errors="replace")
        finally:
            if not complete:
                raw.close()
            raw.release_conn()


def _read_capped(raw: urllib3.HTTPResponse, limit: int, deadline: float) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes of body before ``deadline``; return them and whether that was all."""
    received = bytearray()
    while len(received) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded
        sock = getattr(raw.connection, "sock", None)
        if sock is not None:
            sock.settimeout(remaining)
        chunk = raw.read1(min(_READ_CHUNK, limit - len(received)), decode_content=True)
        if not chunk:
            return bytes(received), True
        received += chunk
    return bytes(received), raw.length_remaining == 0


def _classify_status(result: TransportResult) -> None:
    status = result.status or 0
    if 300 <= status < 400:
        location = next((v for k, v in result.headers.items() if k.lower() == "location"), "")
        result.error_class = ErrorClass.REDIRECT.value
        result.error_message = f"HTTP {status} redirect to {location or '(no location)'} was not followed."
    elif not 200 <= status < 300:
        result.error_class = ErrorClass.HTTP_STATUS.value
        result.error_message = f"HTTP {status}."


def _root_cause(exc: BaseException) -> str:
    while True:
        inner = getattr(exc, "reason", None) or exc.__cause__ or (exc.args[0] if exc.args else None)
        if not isinstance(inner, BaseException) or inner is exc:
            return str(exc)
        exc = inner


_local = threading.local()


def get_transport() -> Transport:
    """The calling thread's :class:`Transport`; its pooled connections are reused across calls.

    A forked worker process gets its own: pooled sockets are never shared with the parent.
    """
    pid = os.getpid()
    if getattr(_local, "pid", None) != pid:
        _local.transport, _local.pid = Transport(), pid
    return _local.transport

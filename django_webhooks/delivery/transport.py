"""HTTP transport: urllib3 connection pools per worker thread, SSRF-safe, bounded in time and size.

Every request resolves its target once through :func:`~django_webhooks.delivery.targets.resolve_target`
and connects to a vetted address, keeping the original host for the ``Host`` header, TLS SNI
and certificate checks (:class:`Transport`). Redirects are never followed and proxies never
used. It talks to urllib3 directly, not through ``requests``: the same connection handling for
about 40% of the CPU per request (``bench/ceiling.py`` measures both).

The whole exchange has one wall-clock deadline, ``TIMEOUT`` after :meth:`Transport.send` starts:
every socket operation (connect, TLS handshake, each send and each read of the status line,
headers, chunk sizes and body) waits at most for the time left, so a receiver that dribbles any
part of its answer cannot stretch it. The connect is also bounded by ``CONNECT_TIMEOUT``. At most
``MAX_RESPONSE_HEADERS`` header lines and ``MAX_RESPONSE_HEADER_BYTES`` of them are read (the
rest is never read: the connection is dropped and the headers marked with
:data:`TRUNCATED_HEADERS_KEY`), and at most ``MAX_RESPONSE_BYTES`` of the body.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import socket
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import certifi
import urllib3
import urllib3.connection
import urllib3.util
from urllib3.util.ssl_ import create_urllib3_context

from ..conf import webhooks_settings
from ..exceptions import BlockedTarget
from ..models import ErrorClass
from .headers import default_headers
from .targets import ResolvedTarget, resolve_target

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, SupportsRead, WriteableBuffer

#: Error classes that say the receiver was never asked (or never answered): worth another try.
RETRYABLE_ERRORS = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECTION,
        ErrorClass.DNS,
        ErrorClass.TLS,
        ErrorClass.INTERNAL,
        ErrorClass.AUTH,
    }
)
#: Error classes that no amount of waiting fixes: the target itself is refused.
FINAL_ERRORS = frozenset({ErrorClass.BLOCKED_TARGET, ErrorClass.INVALID_TARGET, ErrorClass.REDIRECT})
#: 4xx statuses that mean "not now" rather than "never".
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})

#: Key added to a result's headers when some were dropped (``MAX_RESPONSE_HEADERS``,
#: ``MAX_RESPONSE_HEADER_BYTES``). It contains a space, so no header a receiver sends can have it.
TRUNCATED_HEADERS_KEY = "(headers truncated)"
#: Most header lines http.client accepts: it refuses a head of more than 100 lines, counting the
#: blank line that ends it.
_MOST_HEADER_LINES = getattr(http.client, "_MAXHEADERS", 100) - 1

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
    #: Some response headers were dropped (see :data:`TRUNCATED_HEADERS_KEY`); the body was not read.
    headers_truncated: bool = False

    # The one home of what an answer means; the retry policy, the lanes and the health figures
    # read these properties.

    @property
    def succeeded(self) -> bool:
        """A 2xx answer and no error."""
        return not self.error_class and self.status is not None and 200 <= self.status < 300

    @property
    def redirected(self) -> bool:
        """A 3xx answer (never followed)."""
        return self.status is not None and 300 <= self.status < 400

    @property
    def refused(self) -> bool:
        """The target itself is refused (blocked, invalid, a redirect): no amount of waiting fixes it."""
        return self.error_class in FINAL_ERRORS or self.redirected

    @property
    def gone(self) -> bool:
        """``410 Gone``: the receiver says the endpoint no longer exists."""
        return self.status == 410 and not self.refused

    @property
    def retryable(self) -> bool:
        """A failure worth another try, which also says the endpoint is in trouble right now.

        Connection errors, timeouts, DNS, TLS and internal errors, 5xx, 408 and 429 (and an
        answer that is none of success, refusal or another 4xx). Not for a success, a refused
        target, or any other 4xx.
        """
        if self.succeeded or self.refused:
            return False
        status = self.status
        return not (status is not None and 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES)

    def classify_status(self) -> None:
        """Set ``error_class`` and ``error_message`` for an answer that is not a success."""
        if self.succeeded or self.error_class:
            return
        if self.redirected:
            location = next((v for k, v in self.headers.items() if k.lower() == "location"), "")
            self.error_class = ErrorClass.REDIRECT.value
            self.error_message = f"HTTP {self.status} redirect to {location or '(no location)'} was not followed."
        else:
            self.error_class = ErrorClass.HTTP_STATUS.value
            self.error_message = f"HTTP {self.status}."


class _Exchange:
    """The deadline and header caps of the request the calling thread is sending.

    :meth:`Transport.send` installs one for the length of the request; the connection and
    response classes below read it, so the bounds hold on every socket operation, however
    deep in urllib3 and http.client it happens.
    """

    __slots__ = ("deadline", "max_headers", "max_header_bytes", "headers_truncated")

    def __init__(self, deadline: float, max_headers: int, max_header_bytes: int) -> None:
        self.deadline = deadline
        self.max_headers = max_headers
        self.max_header_bytes = max_header_bytes
        self.headers_truncated = False

    def bound(self, timeout: object) -> float:
        """``timeout`` (seconds, or None for no limit of its own) cut to the time left.

        Raises a socket timeout (``TimeoutError``) when no time is left.
        """
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline (TIMEOUT) has passed")
        return min(float(timeout), left) if isinstance(timeout, int | float) else left


_sending = threading.local()


def _current_exchange() -> _Exchange | None:
    return getattr(_sending, "exchange", None)


class _DeadlineSocketIO(io.RawIOBase):
    """The raw socket stream of a response; each read waits at most for the time left."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, exchange: _Exchange) -> None:
        super().__init__()
        self._raw, self._sock, self._exchange = raw, sock, exchange

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        self._sock.settimeout(self._exchange.bound(None))
        return self._raw.readinto(buffer)

    def fileno(self) -> int:
        return self._raw.fileno()

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _ResponseReader(io.BufferedReader):
    """What http.client reads a response from: header lines past the caps are not read.

    While the head is read (``reading_head``), a header line that would pass
    ``MAX_RESPONSE_HEADERS`` or ``MAX_RESPONSE_HEADER_BYTES`` is read no further: http.client
    gets an end of headers instead and the exchange is marked ``headers_truncated``. The status
    line is left to http.client's own limit (64 KiB).
    """

    def __init__(self, raw: _DeadlineSocketIO, exchange: _Exchange) -> None:
        super().__init__(raw)
        self.exchange = exchange
        self.reading_head = False
        self._status_line_next = True
        self._header_lines = 0
        self._header_bytes = 0

    def readline(self, size: int | None = -1) -> bytes:
        if not self.reading_head:
            return super().readline(size)
        exchange = self.exchange
        if exchange.headers_truncated:
            return b""
        if self._status_line_next:
            self._status_line_next = False
            return super().readline(size)
        room = exchange.max_header_bytes - self._header_bytes if self._header_lines < exchange.max_headers else 0
        # Enough to tell a line that fits, and the blank line ending the head, from one that does not.
        limit = max(room + 1, 2)
        line = super().readline(limit if size is None or size < 0 else min(limit, size))
        if line in (b"\r\n", b"\n", b""):
            self._status_line_next = True  # a 100 Continue head is followed by the real one
            return line
        if len(line) > room:
            exchange.headers_truncated = True
            return b"\r\n"
        self._header_lines += 1
        self._header_bytes += len(line)
        return line


class _BoundedHTTPResponse(http.client.HTTPResponse):
    """http.client's response, reading through :class:`_ResponseReader` while a request is sent."""

    def __init__(
        self, sock: socket.socket, debuglevel: int = 0, method: str | None = None, url: str | None = None
    ) -> None:
        super().__init__(sock, debuglevel, method, url)
        exchange = _current_exchange()
        if exchange is not None:
            self.fp = _ResponseReader(_DeadlineSocketIO(self.fp.detach(), sock, exchange), exchange)

    def begin(self) -> None:
        reader = self.fp if isinstance(self.fp, _ResponseReader) else None
        if reader is None:
            return super().begin()
        reader.reading_head = True
        try:
            super().begin()
        finally:
            reader.reading_head = False


class _BoundedHTTPConnection(urllib3.connection.HTTPConnection):
    """urllib3's connection with connect, TLS handshake and sends cut to the request's time left."""

    response_class = _BoundedHTTPResponse

    def _new_conn(self) -> socket.socket:
        exchange = _current_exchange()
        if exchange is None:
            return super()._new_conn()
        try:
            self.timeout = exchange.bound(self.timeout)
        except TimeoutError as exc:
            raise urllib3.exceptions.ConnectTimeoutError(self, f"No time was left to connect to {self.host}.") from exc
        sock = super()._new_conn()
        try:
            sock.settimeout(exchange.bound(self.timeout))  # for the TLS handshake that follows
        except TimeoutError:
            sock.close()
            raise
        return sock

    def send(self, data: ReadableBuffer | SupportsRead[bytes] | Iterable[ReadableBuffer] | str) -> None:
        exchange = _current_exchange()
        if exchange is not None and self.sock is not None:
            self.sock.settimeout(exchange.bound(self.timeout))
        super().send(data)


class _BoundedHTTPSConnection(_BoundedHTTPConnection, urllib3.connection.HTTPSConnection):
    pass


class _BoundedHTTPConnectionPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _BoundedHTTPConnection


class _BoundedHTTPSConnectionPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _BoundedHTTPSConnection


@dataclass(frozen=True)
class ClientTLS:
    """An endpoint's own TLS settings: a client certificate for mutual TLS, and the certificate
    authorities trusted for it in place of the public ones. PEM text, held in memory only."""

    #: The client certificate, followed by any intermediate certificates (PEM).
    certificate: str = ""
    private_key: str = field(default="", repr=False)
    #: Certificates trusted for the endpoint's server certificate instead of the public ones (PEM).
    ca_bundle: str = ""

    @property
    def key(self) -> str:
        """Names these settings in a pool key without holding the private key there."""
        material = "\0".join((self.certificate, self.private_key, self.ca_bundle)).encode("utf-8")
        return hashlib.sha256(material).hexdigest()


def _load_client_certificate(context: ssl.SSLContext, tls: ClientTLS) -> None:
    """Load ``tls``'s certificate and key into ``context`` without writing the key to disk in the clear.

    ``SSLContext.load_cert_chain`` reads files only. The key is written encrypted with a
    one-time passphrase, to an anonymous in-memory file (``memfd``, Linux) or else to a
    private (0600) temporary file, which is removed as soon as it has been read.
    """
    from cryptography.hazmat.primitives import serialization

    passphrase = os.urandom(32).hex().encode("ascii")
    key = serialization.load_pem_private_key(tls.private_key.encode("utf-8"), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    with _private_file(tls.certificate.encode("utf-8")) as cert_path, _private_file(encrypted) as key_path:
        context.load_cert_chain(cert_path, key_path, password=passphrase)


@contextmanager
def _private_file(data: bytes) -> Iterator[str]:
    """A file only this process can read, holding ``data``: its path while the block runs."""
    memfd_create = getattr(os, "memfd_create", None)
    path = ""
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("django-webhooks-tls", getattr(os, "MFD_CLOEXEC", 0))
        name = f"/proc/self/fd/{fd}"
    else:
        fd, path = tempfile.mkstemp(prefix="dwh-tls-")  # mode 0600
        name = path
    try:
        os.write(fd, data)
        yield name
    finally:
        os.close(fd)
        if path:
            os.unlink(path)


#: Keep-alive pools kept per transport (one per target host and vetted address), least recently used dropped.
MAX_POOLS = 64
#: Idle keep-alive connections kept per pool.
POOL_CONNECTIONS = 4


class _Pools:
    """Keep-alive connection pools keyed by (scheme, vetted address, port, host name, TLS settings).

    A pool dials only the vetted address it was made for; for https, SNI and the certificate
    check use the URL's host name, and an endpoint with :class:`ClientTLS` settings gets pools
    (and a TLS context) of its own. The least recently used pool past :data:`MAX_POOLS` is closed.
    """

    def __init__(self, ca_file: str | None = None) -> None:
        self._pools: OrderedDict[tuple[str, str, int, str, str], urllib3.HTTPConnectionPool] = OrderedDict()
        self._ssl_context: ssl.SSLContext | None = None
        self._client_contexts: OrderedDict[str, ssl.SSLContext] = OrderedDict()
        self._ca_file = ca_file

    def get(self, target: ResolvedTarget, address: str, tls: ClientTLS | None = None) -> urllib3.HTTPConnectionPool:
        key = (target.scheme, address, target.port, target.host, tls.key if tls is not None else "")
        pool = self._pools.get(key)
        if pool is not None:
            self._pools.move_to_end(key)
            return pool
        if target.scheme == "https":
            pool = _BoundedHTTPSConnectionPool(
                address,
                target.port,
                maxsize=POOL_CONNECTIONS,
                retries=False,
                server_hostname=target.host,
                assert_hostname=target.host,
                ssl_context=self._tls_context(tls),
            )
        else:
            pool = _BoundedHTTPConnectionPool(address, target.port, maxsize=POOL_CONNECTIONS, retries=False)
        self._pools[key] = pool
        while len(self._pools) > MAX_POOLS:
            self._pools.popitem(last=False)[1].close()
        return pool

    def _tls_context(self, tls: ClientTLS | None = None) -> ssl.SSLContext:
        if tls is not None:
            return self._client_context(tls)
        if self._ssl_context is None:
            context = create_urllib3_context()
            context.load_verify_locations(self._ca_file or certifi.where())
            self._ssl_context = context
        return self._ssl_context

    def _client_context(self, tls: ClientTLS) -> ssl.SSLContext:
        key = tls.key
        context = self._client_contexts.get(key)
        if context is not None:
            self._client_contexts.move_to_end(key)
            return context
        context = create_urllib3_context()
        if tls.ca_bundle:
            context.load_verify_locations(cadata=tls.ca_bundle)
        else:
            context.load_verify_locations(self._ca_file or certifi.where())
        if tls.certificate:
            _load_client_certificate(context, tls)
        self._client_contexts[key] = context
        while len(self._client_contexts) > MAX_POOLS:
            self._client_contexts.popitem(last=False)
        return context

    def close(self) -> None:
        while self._pools:
            self._pools.popitem()[1].close()


class Transport:
    """Sends webhook requests over pooled keep-alive urllib3 connections (use :func:`get_transport`).

    The target is resolved once per request (:func:`resolve_target`) and the connection goes to
    a vetted address; when connecting to one fails (nothing was sent yet), the next one is tried
    before the same deadline. Redirects are never followed, proxies never used (they would
    bypass the address check), cookies never stored.
    """

    def __init__(self, *, ca_file: str | None = None) -> None:
        #: ``ca_file``: the certificate authorities trusted for https targets (PEM file), in place
        #: of the public ones (``certifi``).
        self.pools = _Pools(ca_file)

    def close(self) -> None:
        self.pools.close()

    def send(self, url: str, body: bytes, headers: dict[str, str], *, tls: ClientTLS | None = None) -> TransportResult:
        """POST ``body`` to ``url``; network problems come back as ``error_class``, never raised.

        ``tls``: the endpoint's client certificate and trusted authorities (mutual TLS).
        """
        started = time.monotonic()
        total = float(webhooks_settings.TIMEOUT)
        exchange = _Exchange(
            deadline=started + total,
            max_headers=min(int(webhooks_settings.MAX_RESPONSE_HEADERS), _MOST_HEADER_LINES),
            max_header_bytes=int(webhooks_settings.MAX_RESPONSE_HEADER_BYTES),
        )
        result = TransportResult()
        _sending.exchange = exchange
        try:
            self._exchange(url, body, {**default_headers(), **headers}, exchange, result, tls)
        except BlockedTarget as exc:
            result.error_class, result.error_message = exc.error_class, str(exc)
        except urllib3.exceptions.NewConnectionError as exc:
            result.error_class, result.error_message = (
                ErrorClass.CONNECTION.value,
                f"Connection error: {_root_cause(exc)}",
            )
        except urllib3.exceptions.ConnectTimeoutError:
            result.error_class = ErrorClass.TIMEOUT.value
            connect = min(float(webhooks_settings.CONNECT_TIMEOUT), total)
            result.error_message = f"Could not connect within {connect:g} s."
        except urllib3.exceptions.TimeoutError:
            result.error_class = ErrorClass.TIMEOUT.value
            result.error_message = f"No complete response within {total:g} s."
        except urllib3.exceptions.SSLError as exc:
            result.error_class, result.error_message = ErrorClass.TLS.value, f"TLS error: {_root_cause(exc)}"
        except (urllib3.exceptions.LocationValueError, http.client.InvalidURL, ValueError) as exc:
            # A URL or header value the request line cannot carry (control characters, non-Latin-1).
            result.error_class, result.error_message = ErrorClass.INVALID_TARGET.value, f"Not sendable: {exc}"
        except (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError) as exc:
            if _caused_by_timeout(exc):
                result.error_class = ErrorClass.TIMEOUT.value
                result.error_message = f"No complete response within {total:g} s."
            else:
                result.error_class = ErrorClass.CONNECTION.value
                result.error_message = f"Connection error: {_root_cause(exc)}"
        finally:
            _sending.exchange = None
        result.duration_ms = int((time.monotonic() - started) * 1000)
        if result.status is not None:
            result.classify_status()
        return result

    def post_form(
        self, url: str, fields: dict[str, str], headers: dict[str, str], *, tls: ClientTLS | None = None
    ) -> TransportResult:
        """POST ``fields`` form-encoded to ``url`` (an OAuth2 token request), with the same SSRF
        guard, deadline and caps as :meth:`send`."""
        body = urlencode(fields).encode("ascii")
        form_headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        return self.send(url, body, {**headers, **form_headers}, tls=tls)

    def _exchange(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        exchange: _Exchange,
        result: TransportResult,
        tls: ClientTLS | None = None,
    ) -> None:
        target = resolve_target(url)
        parsed = urllib3.util.parse_url(url)
        headers["Host"] = parsed.netloc or target.host
        # Per socket operation; the deadline (``exchange``) bounds them all together.
        timeout = urllib3.Timeout(
            connect=float(webhooks_settings.CONNECT_TIMEOUT), read=float(webhooks_settings.TIMEOUT)
        )
        for index, address in enumerate(target.addresses):
            try:
                response = self.pools.get(target, address, tls).urlopen(
                    "POST",
                    parsed.request_uri,
                    body=body,
                    headers=headers,
                    retries=False,
                    redirect=False,
                    assert_same_host=False,
                    timeout=timeout,
                    preload_content=False,
                    release_conn=False,
                )
                break
            except urllib3.exceptions.ConnectTimeoutError:  # also NewConnectionError: nothing was sent
                if index + 1 == len(target.addresses):
                    raise
        result.status = response.status
        result.headers = dict(response.headers)
        complete = False
        try:
            if exchange.headers_truncated:
                # The rest of the head was never read, so where the body starts is unknown.
                result.headers_truncated = True
                result.headers[TRUNCATED_HEADERS_KEY] = (
                    f"Headers past {exchange.max_headers} lines or {exchange.max_header_bytes} bytes were not read "
                    "(MAX_RESPONSE_HEADERS, MAX_RESPONSE_HEADER_BYTES); neither was the body."
                )
                return
            content = _read_capped(response, int(webhooks_settings.MAX_RESPONSE_BYTES))
            complete = content.complete
            result.body = _decode(content.data, _charset(response.headers.get("Content-Type", "")))
        finally:
            if not complete:
                response.close()
            response.release_conn()


def _charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type value, if it names one."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"') or None
    return None


@dataclass
class _Body:
    data: bytes
    #: The whole body was read (the connection can be reused).
    complete: bool


def _read_capped(raw: urllib3.BaseHTTPResponse, limit: int) -> _Body:
    """Read at most ``limit`` bytes of body (each socket read keeps to the request's deadline)."""
    received = bytearray()
    while len(received) < limit:
        chunk = raw.read1(min(_READ_CHUNK, limit - len(received)), decode_content=True)
        if not chunk:
            return _Body(bytes(received), True)
        received += chunk
    return _Body(bytes(received), raw.length_remaining == 0)


def _decode(content: bytes, encoding: str | None) -> str:
    """The body as text, in the charset the receiver named if Python can decode it, else UTF-8."""
    try:
        return content.decode(encoding or "utf-8", errors="replace")
    except (LookupError, ValueError):  # unknown, not a text encoding, or no "replace" (idna)
        return content.decode("utf-8", errors="replace")


def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it wraps (urllib3's ``reason``, ``__cause__``, exception args)."""
    found: list[BaseException] = []
    pending = [exc]
    while pending and len(found) < 20:
        current = pending.pop()
        if any(current is seen for seen in found):
            continue
        found.append(current)
        wrapped = (getattr(current, "reason", None), current.__cause__, *current.args)
        pending.extend(inner for inner in wrapped if isinstance(inner, BaseException))
    return found


def _caused_by_timeout(exc: BaseException) -> bool:
    """A socket timeout urllib3 reported as a connection error (a send that ran out of time)."""
    return any(isinstance(cause, TimeoutError) for cause in _causes(exc))


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

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterable

import pytest
from django.conf import settings
from django.test import override_settings

from django_webhooks import __version__
from django_webhooks.delivery import lanes
from django_webhooks.delivery.headers import request_headers
from django_webhooks.delivery.transport import TRUNCATED_HEADERS_KEY, Transport, TransportResult, get_transport
from django_webhooks.models import DeliveryAttempt, ErrorClass
from tests.receiver import Receiver, Reply
from tests.tls import TLSReceiver, self_signed_certificate

BODY = b'{"type":"order.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":1}}'
SIGNED = {"webhook-id": "msg_1", "webhook-timestamp": "1614265330", "webhook-signature": "v1,abc="}

#: Every host name the resolver hooks below were asked for, in order.
LOOKUPS: list[str] = []
#: Answers :func:`scripted_resolver` gives, one per lookup (the last one repeats).
ANSWERS: list[str] = []


def scripted_resolver(host, port, *args, **kwargs):
    """A getaddrinfo stand-in whose answer changes between lookups (DNS rebinding)."""
    LOOKUPS.append(host)
    address = ANSWERS[min(len(LOOKUPS), len(ANSWERS)) - 1]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return [(family, socket.SOCK_STREAM, 6, "", (address, port))]


def two_address_resolver(host, port, *args, **kwargs):
    """Answers with an address nothing listens on (127.0.0.2) before the receiver's."""
    LOOKUPS.append(host)
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in ("127.0.0.2", "127.0.0.1")]


def webhooks(**overrides):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **overrides})


@pytest.fixture
def transport():
    transport = Transport()
    yield transport
    transport.close()


@pytest.fixture
def scripted_dns():
    LOOKUPS.clear()
    ANSWERS.clear()
    with webhooks(RESOLVER="tests.delivery.test_transport.scripted_resolver"):
        yield ANSWERS
    LOOKUPS.clear()
    ANSWERS.clear()


class PortRecordingReceiver(Receiver):
    """Also records the client port of every request, to tell connections apart."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(host)
        self.client_ports: list[int] = []

    def _handle(self, handler) -> None:
        self.client_ports.append(handler.client_address[1])
        super()._handle(handler)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- outcomes --------------------------------------------------------------------------------------


def test_2xx_is_a_success_and_the_exact_body_arrives(transport, receiver):
    receiver.script = [Reply(202, body=b'{"accepted": true}', headers={"X-Request-Id": "r-1"})]
    result = transport.send(receiver.url("/hook?tenant=1"), BODY, request_headers({}, SIGNED))
    assert result.succeeded
    assert (result.status, result.error_class, result.error_message) == (202, "", "")
    assert result.body == '{"accepted": true}'
    assert result.headers["X-Request-Id"] == "r-1"
    assert result.duration_ms >= 0
    [request] = receiver.requests
    assert (request.method, request.path, request.body) == ("POST", "/hook?tenant=1", BODY)
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"django-webhooks/{__version__}"
    assert request.headers["webhook-signature"] == "v1,abc="


def test_non_2xx_is_an_http_status_error_with_the_response_kept(transport, receiver):
    receiver.script = [Reply(500, body=b"database is down")]
    result = transport.send(receiver.url(), BODY, {})
    assert not result.succeeded
    assert (result.status, result.error_class, result.body) == (500, "http_status", "database is down")
    assert "500" in result.error_message


def test_redirect_is_recorded_and_not_followed(transport, receiver):
    receiver.routes = {"/hook": [Reply(302, headers={"Location": receiver.url("/elsewhere")})]}
    result = transport.send(receiver.url("/hook"), BODY, {})
    assert not result.succeeded
    assert (result.status, result.error_class) == (302, "redirect")
    assert "/elsewhere" in result.error_message
    assert receiver.received("/elsewhere") == []


def test_redirect_body_is_capped_and_bounded_in_time(transport, receiver):
    location = {"Location": receiver.url("/elsewhere")}
    receiver.script = [Reply(307, headers=location, stream_bytes=30 * 1024 * 1024)]
    huge = transport.send(receiver.url(), BODY, {})
    assert (huge.status, huge.error_class, len(huge.body)) == (307, "redirect", 20 * 1024)

    receiver.script = [Reply(301, headers=location, body=b"x" * 400, drip=0.05)]
    with webhooks(TIMEOUT=1.0):
        dripping = transport.send(receiver.url(), BODY, {})
    assert (dripping.status, dripping.error_class) == (301, "timeout")
    assert receiver.received("/elsewhere") == []


def test_undecodable_response_body_is_kept_with_replacement_characters(transport, receiver):
    receiver.script = [Reply(200, body=b"ok \xff\xfe", headers={"Content-Type": "text/plain; charset=utf-8"})]
    assert transport.send(receiver.url(), BODY, {}).body == "ok \ufffd\ufffd"


@pytest.mark.parametrize("charset", ["no-such-charset", "base64", "idna"])
def test_a_charset_python_cannot_decode_with_falls_back_to_utf8(transport, receiver, charset):
    receiver.script = [Reply(200, body=b"ok \xff", headers={"Content-Type": f"text/plain; charset={charset}"})]
    result = transport.send(receiver.url(), BODY, {})
    assert (result.succeeded, result.body) == (True, "ok \ufffd")


def test_refused_connection_is_a_connection_error(transport):
    result = transport.send(f"http://127.0.0.1:{free_port()}/hook", BODY, {})
    assert (result.status, result.error_class) == (None, "connection")
    assert not result.succeeded


# -- time and size bounds ----------------------------------------------------------------------------


def test_hanging_receiver_is_cut_at_the_timeout(transport, receiver):
    receiver.script = [Reply(200, delay=30)]
    with webhooks(TIMEOUT=0.5):
        result = transport.send(receiver.url(), BODY, {})
    assert (result.status, result.error_class) == (None, "timeout")
    assert not result.succeeded


def test_dripping_response_is_cut_at_the_total_timeout(transport, receiver):
    receiver.script = [Reply(200, body=b"x" * 400, drip=0.05)]
    with webhooks(TIMEOUT=1.0):
        result = transport.send(receiver.url(), BODY, {})
    assert result.status == 200
    assert result.error_class == "timeout"
    assert not result.succeeded


def test_huge_response_is_read_only_up_to_the_cap(transport, receiver):
    receiver.script = [Reply(200, stream_bytes=30 * 1024 * 1024)]
    peak_before_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = transport.send(receiver.url(), BODY, {})
    peak_growth_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before_kb
    assert result.succeeded
    assert len(result.body) == 20 * 1024
    assert peak_growth_kb < 8 * 1024


def test_response_cap_follows_the_setting(transport, receiver):
    receiver.script = [Reply(200, body=b"y" * 5000)]
    with webhooks(MAX_RESPONSE_BYTES=100):
        result = transport.send(receiver.url(), BODY, {})
    assert result.body == "y" * 100


# -- one deadline for the whole exchange ---------------------------------------------------------------

#: Seconds between two bytes of a dribbling receiver: each part it dribbles lasts about 10 s.
DRIBBLE = 0.2
SLOW = "a" * 50

#: What a :class:`RawReceiver` sends: (data, seconds between bytes, or 0 to send it at once).
Answer = Iterable[tuple[bytes, float]]


class RawReceiver:
    """An HTTP/1.1 server on 127.0.0.1 written on raw sockets, answering each request with ``answer()``.

    Parts of the answer can be dribbled one byte at a time, which http.server cannot do for the
    status line and headers. ``answer=None`` holds each connection without reading or writing a
    byte. Connections are served one after another in one thread, which stops by itself after
    ``connections`` of them, when a client hangs up, when the test ends or after 60 s.
    """

    def __init__(
        self,
        answer: Callable[[], Answer] | None,
        tls: ssl.SSLContext | None = None,
        connections: int = 1,
        receive_buffer: int = 0,
    ) -> None:
        self.answer = answer
        self.tls = tls
        self.connections = connections
        self.listener = socket.socket()
        if receive_buffer:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.requests: list[bytes] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)
        self.listener.close()

    def url(self, host_name: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host_name}:{self.port}/hook"

    def _serve(self) -> None:
        give_up_at = time.monotonic() + 60
        served = 0
        while served < self.connections and not self.stopping.is_set() and time.monotonic() < give_up_at:
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            served += 1
            # OSError: the client hung up (ssl.SSLError is an OSError too).
            with connection, contextlib.suppress(OSError):
                self._converse(connection)

    def _converse(self, connection: socket.socket) -> None:
        connection.settimeout(10)
        if self.answer is None:
            self.stopping.wait(30)
            return
        if self.tls:
            connection = self.tls.wrap_socket(connection, server_side=True)
        request = b""
        while b"\r\n\r\n" not in request:
            data = connection.recv(65536)
            if not data:
                return
            request += data
        head, _, body = request.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        while length and len(body) < int(length.group(1)):
            body += connection.recv(65536)
        self.requests.append(head)
        for data, interval in self.answer():
            if not interval:
                connection.sendall(data)
                continue
            for byte in data:
                connection.sendall(bytes([byte]))
                if self.stopping.wait(interval):
                    return


def dribbled_status_line() -> Answer:
    return [(b"HTTP/1.1 200 O" + SLOW.encode() + b"K\r\n", DRIBBLE)]


def dribbled_headers() -> Answer:
    return [(b"HTTP/1.1 200 OK\r\n", 0), (f"X-Slow: {SLOW}\r\n".encode(), DRIBBLE)]


def dribbled_chunk_sizes() -> Answer:
    return [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", 0),
        (f"2;{SLOW}\r\n".encode(), DRIBBLE),
    ]


def ok_with_headers(*lines: str) -> Callable[[], Answer]:
    """A 200 with ``lines``, then ``Connection: close`` (one request per connection) and ``Content-Length``."""
    head = "".join(f"{line}\r\n" for line in lines)
    return lambda: [(f"HTTP/1.1 200 OK\r\n{head}Connection: close\r\nContent-Length: 2\r\n\r\nok".encode(), 0)]


def send_within_deadline(transport, url, body=BODY):
    """Send with ``TIMEOUT`` 2 s and check the issue's bound: over within ``TIMEOUT`` + 1 s."""
    started = time.monotonic()
    with webhooks(TIMEOUT=2.0, CONNECT_TIMEOUT=2.0):
        result = transport.send(url, body, {})
    assert time.monotonic() - started < 3.0
    return result


@pytest.mark.parametrize(
    "answer,status",
    [(dribbled_status_line, None), (dribbled_headers, None), (dribbled_chunk_sizes, 200)],
    ids=["status line", "headers", "chunk sizes"],
)
def test_a_dribbling_receiver_cannot_stretch_the_request_past_the_timeout(transport, answer, status):
    with RawReceiver(answer) as dribbling:
        result = send_within_deadline(transport, dribbling.url())
    assert (result.status, result.error_class) == (status, "timeout")
    assert result.error_message == "No complete response within 2 s."
    assert len(dribbling.requests) == 1


def test_a_receiver_dribbling_over_tls_cannot_stretch_the_request(tmp_path, scripted_dns):
    scripted_dns[:] = ["127.0.0.1"]
    cert_path, key_path = self_signed_certificate(tmp_path, "hooks.test")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    transport = Transport(ca_file=str(cert_path))
    with RawReceiver(dribbled_headers, tls=context) as dribbling:
        result = send_within_deadline(transport, dribbling.url(host_name="hooks.test"))
    assert (result.status, result.error_class) == (None, "timeout")
    assert len(dribbling.requests) == 1


def test_a_tls_handshake_that_never_comes_is_cut_at_the_timeout(transport, scripted_dns):
    scripted_dns[:] = ["127.0.0.1"]
    with RawReceiver(None) as silent:
        result = send_within_deadline(transport, f"https://hooks.test:{silent.port}/hook")
    assert (result.status, result.error_class) == (None, "timeout")


def test_a_receiver_that_never_reads_the_request_is_a_timeout(transport):
    # A small receive window, and far more body than the socket buffers hold: sending blocks.
    with RawReceiver(None, receive_buffer=4096) as deaf:
        result = send_within_deadline(transport, deaf.url(), body=b"x" * (32 * 1024 * 1024))
    assert (result.status, result.error_class) == (None, "timeout")


# -- response header caps ----------------------------------------------------------------------------


def ten_megabytes_of_headers(line_length: int) -> Callable[[], Answer]:
    """Status 200, then 10 MB of header lines of ``line_length`` bytes, then a body."""

    def answer() -> Answer:
        yield b"HTTP/1.1 200 OK\r\n", 0
        if line_length < 65536:
            line = b"X-Filler: " + b"f" * (line_length - 12) + b"\r\n"
            chunk = line * (65536 // len(line))
            for _ in range(10 * 1024 * 1024 // len(chunk)):
                yield chunk, 0
        else:  # sent in pieces, so that the receiver itself holds little memory
            yield b"X-Filler: ", 0
            for _ in range(line_length // 65536):
                yield b"f" * 65536, 0
            yield b"\r\n", 0
        yield b"Content-Length: 2\r\n\r\nok", 0

    return answer


def stored_size(headers: dict[str, str]) -> int:
    return sum(len(name) + len(value) for name, value in headers.items())


@pytest.mark.parametrize("line_length", [100, 4096, 10 * 1024 * 1024], ids=["short lines", "long lines", "one line"])
def test_ten_megabytes_of_headers_leave_bounded_headers_and_memory(transport, line_length):
    with RawReceiver(ten_megabytes_of_headers(line_length)) as flooding:
        tracemalloc.start()
        try:
            result = transport.send(flooding.url(), BODY, {})
            peak_bytes = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    # The status decides, as for a capped body; the rest of the answer was never read.
    assert (result.status, result.error_class, result.body) == (200, "", "")
    assert result.succeeded and result.headers_truncated
    assert TRUNCATED_HEADERS_KEY in result.headers
    assert stored_size(result.headers) < 17 * 1024
    assert peak_bytes < 2 * 1024 * 1024


def test_header_caps_keep_the_first_lines_and_mark_the_rest_dropped(transport):
    lines = [f"X-Header-{n}: {n}" for n in range(1, 6)]
    with RawReceiver(ok_with_headers(*lines), connections=3) as receiver:
        with webhooks(MAX_RESPONSE_HEADERS=3):
            by_count = transport.send(receiver.url(), BODY, {})
        with webhooks(MAX_RESPONSE_HEADER_BYTES=len("X-Header-1: 1\r\n") * 2):
            by_bytes = transport.send(receiver.url(), BODY, {})
        whole = transport.send(receiver.url(), BODY, {})
    assert by_count.headers_truncated and by_bytes.headers_truncated
    assert [name for name in by_count.headers if name != TRUNCATED_HEADERS_KEY] == [
        "X-Header-1",
        "X-Header-2",
        "X-Header-3",
    ]
    assert [name for name in by_bytes.headers if name != TRUNCATED_HEADERS_KEY] == ["X-Header-1", "X-Header-2"]
    assert "MAX_RESPONSE_HEADERS" in by_count.headers[TRUNCATED_HEADERS_KEY]
    assert (whole.succeeded, whole.headers_truncated, whole.body) == (True, False, "ok")
    assert len(whole.headers) == 7
    assert len(receiver.requests) == 3


def test_a_connection_cut_in_its_headers_is_dropped_and_the_next_one_kept_alive(transport):
    with PortRecordingReceiver() as receiver:
        receiver.script = [Reply(200, body=b"whole", headers={f"X-Header-{n}": str(n) for n in range(1, 6)})]
        with webhooks(MAX_RESPONSE_HEADERS=3):
            cut = transport.send(receiver.url(), BODY, {})
        first = transport.send(receiver.url(), BODY, {})
        second = transport.send(receiver.url(), BODY, {})
    assert cut.headers_truncated and cut.body == ""
    assert (first.succeeded, first.headers_truncated, first.body) == (True, False, "whole")
    assert second.body == "whole"
    # The rest of the cut head was never parsed as the next response: that connection was dropped.
    cut_port, first_port, second_port = receiver.client_ports
    assert cut_port != first_port == second_port


def test_headers_exactly_at_the_caps_are_kept_whole(transport):
    lines = ["X-A: 1", "X-B: 2"]  # then Connection and Content-Length: four lines, 8 + 8 + 19 + 19 bytes
    with RawReceiver(ok_with_headers(*lines), connections=3) as receiver:
        with webhooks(MAX_RESPONSE_HEADERS=4, MAX_RESPONSE_HEADER_BYTES=54):
            exact = transport.send(receiver.url(), BODY, {})
        with webhooks(MAX_RESPONSE_HEADER_BYTES=53):
            one_byte_less = transport.send(receiver.url(), BODY, {})
        with webhooks(MAX_RESPONSE_HEADERS=3):
            one_line_less = transport.send(receiver.url(), BODY, {})
    assert (exact.headers_truncated, exact.body, TRUNCATED_HEADERS_KEY in exact.headers) == (False, "ok", False)
    assert exact.headers == {"X-A": "1", "X-B": "2", "Connection": "close", "Content-Length": "2"}
    assert one_byte_less.headers_truncated and one_line_less.headers_truncated
    assert (
        list(one_byte_less.headers)
        == list(one_line_less.headers)
        == ["X-A", "X-B", "Connection", TRUNCATED_HEADERS_KEY]
    )


def test_a_receiver_flooding_headers_leaves_a_bounded_attempt_record(make_subscription, make_delivery):
    with RawReceiver(ten_megabytes_of_headers(100)) as flooding:
        delivery = make_delivery(make_subscription(url=flooding.url()))
        assert lanes.deliver_due(time_budget=1) == 1
    stored = DeliveryAttempt.objects.get(delivery=delivery)
    assert (stored.response_status, stored.error_class) == (200, "")
    assert TRUNCATED_HEADERS_KEY in stored.response_headers
    assert len(json.dumps(stored.response_headers)) < 64 * 1024


# -- headers -----------------------------------------------------------------------------------------


def test_custom_headers_cannot_override_protected_ones(transport, receiver):
    custom = {
        "X-Tenant": "acme",
        "Webhook-Signature": "v1,forged",
        "HOST": "internal.example",
        "content-type": "text/plain",
        "User-Agent": "evil/1.0",
        "Content-Length": "1",
        "Transfer-Encoding": "chunked",
        "Connection": "close",
    }
    transport.send(receiver.url(), BODY, request_headers(custom, SIGNED))
    [request] = receiver.requests
    assert request.headers["x-tenant"] == "acme"
    assert request.headers["webhook-signature"] == "v1,abc="
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == f"django-webhooks/{__version__}"
    assert request.headers["content-length"] == str(len(BODY))
    assert "transfer-encoding" not in request.headers
    assert request.body == BODY


def test_user_agent_setting(transport, receiver):
    with webhooks(USER_AGENT="AcmeHooks/2.0"):
        transport.send(receiver.url(), BODY, request_headers({}, SIGNED))
    assert receiver.requests[0].headers["user-agent"] == "AcmeHooks/2.0"


def test_cookies_are_never_stored_or_sent(transport, receiver):
    receiver.script = [Reply(200, headers={"Set-Cookie": "session=abc; Path=/"})]
    transport.send(receiver.url(), BODY, {})
    transport.send(receiver.url(), BODY, {})
    assert "cookie" not in receiver.requests[1].headers


def test_proxy_environment_variables_are_ignored(transport, receiver, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("NO_PROXY", "")
    assert transport.send(receiver.url(), BODY, {}).succeeded


# -- connection reuse ----------------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection():
    transport = Transport()
    with PortRecordingReceiver() as receiver:
        first = transport.send(receiver.url(), BODY, {})
        second = transport.send(receiver.url(), BODY, {})
    transport.close()
    assert first.succeeded and second.succeeded
    assert len(receiver.client_ports) == 2
    assert len(set(receiver.client_ports)) == 1


def test_get_transport_is_one_per_thread():
    mine = get_transport()
    assert get_transport() is mine
    other: list[Transport] = []
    worker = threading.Thread(target=lambda: other.append(get_transport()))
    worker.start()
    worker.join(timeout=10)
    assert other and other[0] is not mine


def test_get_transport_is_new_after_a_fork(monkeypatch):
    parents = get_transport()
    monkeypatch.setattr(os, "getpid", lambda: -1)
    childs = get_transport()
    assert childs is not parents
    assert get_transport() is childs


# -- SSRF guard on the wire -------------------------------------------------------------------------------


def test_loopback_target_is_refused_when_not_allowed(transport, receiver):
    with webhooks(ALLOW_LOOPBACK=False):
        result = transport.send(receiver.url(), BODY, {})
    assert (result.status, result.error_class) == (None, "blocked_target")
    assert "127.0.0.1 is a loopback address" in result.error_message
    assert receiver.requests == []


def test_allow_listed_internal_target_is_delivered(transport, receiver):
    with webhooks(ALLOW_LOOPBACK=False, ALLOWED_TARGETS=["127.0.0.0/8"]):
        result = transport.send(receiver.url(), BODY, {})
    assert result.succeeded
    assert receiver.requests[0].body == BODY


def test_dns_failure_is_a_dns_error(transport, scripted_dns):
    with webhooks(RESOLVER="socket.getaddrinfo"):
        result = transport.send("http://no-such-host.invalid/hook", BODY, {})
    assert (result.status, result.error_class) == (None, "dns")


def test_connection_goes_to_the_vetted_address_after_one_lookup(transport, receiver, scripted_dns):
    scripted_dns[:] = ["127.0.0.1", "169.254.169.254"]
    result = transport.send(f"http://hooks.example.com:{receiver.port}/hook", BODY, {})
    assert result.succeeded
    assert LOOKUPS == ["hooks.example.com"]
    assert receiver.requests[0].headers["host"] == f"hooks.example.com:{receiver.port}"

    rebound = transport.send(f"http://hooks.example.com:{receiver.port}/hook", BODY, {})
    assert rebound.error_class == "blocked_target"
    assert "resolves to 169.254.169.254" in rebound.error_message
    assert len(receiver.requests) == 1


def test_next_vetted_address_is_tried_when_connecting_fails(transport, receiver):
    LOOKUPS.clear()
    with webhooks(RESOLVER="tests.delivery.test_transport.two_address_resolver"):
        result = transport.send(f"http://two.example.com:{receiver.port}/hook", BODY, {})
    assert result.succeeded, result.error_message
    assert LOOKUPS == ["two.example.com"]
    assert len(receiver.requests) == 1


def test_rebinding_between_check_and_connect_cannot_redirect_the_connection(transport, receiver, scripted_dns):
    # The first answer is vetted (allow-listed, nothing listens there); a second lookup would
    # answer with the receiver's forbidden address.
    scripted_dns[:] = ["127.0.0.2", "127.0.0.1"]
    with webhooks(ALLOW_LOOPBACK=False, ALLOWED_TARGETS=["127.0.0.2/32"], TIMEOUT=2.0):
        result = transport.send(f"http://rebind.example.com:{receiver.port}/hook", BODY, {})
    assert LOOKUPS == ["rebind.example.com"]
    assert result.error_class == "connection"
    assert receiver.requests == []


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="this machine has no IPv6 loopback (::1)")
def test_ipv6_loopback_receiver():
    transport = Transport()
    with Receiver(host="::1") as receiver:
        result = transport.send(receiver.url(), BODY, {})
        assert receiver.requests[0].headers["host"] == f"[::1]:{receiver.port}"
    transport.close()
    assert result.succeeded


# -- TLS ---------------------------------------------------------------------------------------------------


@pytest.fixture
def tls_receiver(tmp_path, scripted_dns):
    scripted_dns[:] = ["127.0.0.1"]
    cert_path, key_path = self_signed_certificate(tmp_path, "hooks.test")
    with TLSReceiver(cert_path, key_path) as receiver:
        receiver.cert_path = cert_path
        yield receiver


def test_untrusted_certificate_is_a_tls_error_and_sni_names_the_host(transport, tls_receiver):
    result = transport.send(tls_receiver.url(host_name="hooks.test"), BODY, {})
    assert (result.status, result.error_class) == (None, "tls")
    assert "certificate" in result.error_message.lower()
    assert tls_receiver.server_names == ["hooks.test"]
    assert tls_receiver.requests == []


def test_trusted_certificate_is_checked_against_the_url_host(tls_receiver):
    transport = Transport(ca_file=str(tls_receiver.cert_path))
    result = transport.send(tls_receiver.url(host_name="hooks.test"), BODY, {})
    assert result.succeeded, result.error_message
    assert tls_receiver.requests[0].headers["host"] == f"hooks.test:{tls_receiver.port}"

    mismatch = transport.send(tls_receiver.url(host_name="other.test"), BODY, {})
    assert mismatch.error_class == "tls"
    assert len(tls_receiver.requests) == 1


# -- what an answer means ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, error_class, expected",
    [
        (200, "", "succeeded"),
        (204, "", "succeeded"),
        (500, ErrorClass.HTTP_STATUS, "retryable"),
        (503, ErrorClass.HTTP_STATUS, "retryable"),
        (408, ErrorClass.HTTP_STATUS, "retryable"),
        (429, ErrorClass.HTTP_STATUS, "retryable"),
        (None, ErrorClass.TIMEOUT, "retryable"),
        (None, ErrorClass.CONNECTION, "retryable"),
        (None, ErrorClass.DNS, "retryable"),
        (None, ErrorClass.TLS, "retryable"),
        (None, ErrorClass.INTERNAL, "retryable"),
        (404, ErrorClass.HTTP_STATUS, "final"),
        (422, ErrorClass.HTTP_STATUS, "final"),
        (410, ErrorClass.HTTP_STATUS, "gone"),
        (302, ErrorClass.REDIRECT, "refused"),
        (307, "", "refused"),
        (None, ErrorClass.BLOCKED_TARGET, "refused"),
        (None, ErrorClass.INVALID_TARGET, "refused"),
    ],
)
def test_one_rule_says_what_an_answer_means(status, error_class, expected):
    result = TransportResult(status=status, error_class=error_class)
    meaning = {
        "succeeded": result.succeeded,
        "retryable": result.retryable,
        "refused": result.refused,
        "gone": result.gone,
    }
    assert [name for name, holds in meaning.items() if holds] == ([] if expected == "final" else [expected])


def test_a_status_that_is_not_a_success_is_classified_once(transport, receiver):
    receiver.script = [Reply(302, headers={"Location": "https://elsewhere.example/"}), Reply(503)]
    redirect = transport.send(receiver.url(), BODY, {})
    assert (redirect.error_class, redirect.refused, redirect.retryable) == ("redirect", True, False)
    assert "https://elsewhere.example/" in redirect.error_message
    down = transport.send(receiver.url(), BODY, {})
    assert (down.error_class, down.error_message, down.retryable) == ("http_status", "HTTP 503.", True)

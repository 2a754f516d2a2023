from __future__ import annotations

import os
import resource
import socket
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings

from django_webhooks import __version__
from django_webhooks.transport import (
    PROTECTED_HEADERS,
    Transport,
    get_transport,
    request_headers,
    validate_custom_headers,
)
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
    with webhooks(RESOLVER="tests.test_transport.scripted_resolver"):
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


def test_request_headers_merge_rules():
    headers = request_headers({"X-A": "1", "webhook-ID": "msg_forged", "X-Bad": "a\r\nInjected: 1"}, SIGNED)
    assert headers == {
        "X-A": "1",
        **SIGNED,
        "User-Agent": f"django-webhooks/{__version__}",
        "Content-Type": "application/json",
    }
    assert request_headers(None, {})["User-Agent"].startswith("django-webhooks/")


def test_user_agent_setting(transport, receiver):
    with webhooks(USER_AGENT="AcmeHooks/2.0"):
        transport.send(receiver.url(), BODY, request_headers({}, SIGNED))
    assert receiver.requests[0].headers["user-agent"] == "AcmeHooks/2.0"


@pytest.mark.parametrize("name", ["Upgrade", "TE", "Cookie", "Keep-Alive", "Proxy-Authorization", "Webhook-Extra"])
def test_framing_and_hop_by_hop_headers_are_refused_and_never_sent(name):
    with pytest.raises(ValidationError, match="cannot be overridden"):
        validate_custom_headers({name: "x"})
    assert name not in request_headers({name: "x"}, SIGNED)


def test_custom_headers_are_refused_with_one_message_each():
    with pytest.raises(ValidationError) as info:
        validate_custom_headers(
            {"X-Ok": "1", "Bad Name": "x", "X-Trailing\n": "x", "Host": "internal", "X-Line": "a\r\nb", "x-ok": "2"}
        )
    assert len(info.value.messages) == 5
    validate_custom_headers({"X-Team": "billing", "Authorization": "Bearer abc"})


def test_protected_headers_are_exposed_lowercase():
    assert {"webhook-id", "webhook-timestamp", "webhook-signature", "host", "user-agent"} <= PROTECTED_HEADERS
    assert all(name == name.lower() for name in PROTECTED_HEADERS)


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
    with webhooks(RESOLVER="tests.test_transport.two_address_resolver"):
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


def test_trusted_certificate_is_checked_against_the_url_host(transport, tls_receiver):
    transport.session.verify = str(tls_receiver.cert_path)
    result = transport.send(tls_receiver.url(host_name="hooks.test"), BODY, {})
    assert result.succeeded, result.error_message
    assert tls_receiver.requests[0].headers["host"] == f"hooks.test:{tls_receiver.port}"

    mismatch = transport.send(tls_receiver.url(host_name="other.test"), BODY, {})
    assert mismatch.error_class == "tls"
    assert len(tls_receiver.requests) == 1

"""Requests with the receiver's authentication: header credentials, and mutual TLS against a
loopback server that requires a client certificate of its own CA."""

from __future__ import annotations

import base64
import json
import os
import ssl
import tempfile
from pathlib import Path

import pytest

from django_webhooks.delivery.transport import ClientTLS, Transport
from django_webhooks.models import DeliveryStatus, ErrorClass
from django_webhooks.receiver_auth import configure_auth
from django_webhooks.testing import drain
from tests.pki import CertificateAuthority
from tests.tls import TLSReceiver

pytestmark = pytest.mark.django_db


def _header(requests, name):
    return [request.headers.get(name) for request in requests]


@pytest.mark.parametrize(
    ("auth", "header", "value"),
    [
        (
            {"method": "basic", "username": "shop", "password": "pw-31337"},
            "Authorization",
            "Basic " + base64.b64encode(b"shop:pw-31337").decode(),
        ),
        ({"method": "bearer", "token": "tok-31337"}, "Authorization", "Bearer tok-31337"),
        ({"method": "api_key", "header_name": "X-Shop-Key", "token": "key-31337"}, "X-Shop-Key", "key-31337"),
    ],
)
def test_header_credentials_are_sent_and_never_stored(auth, header, value, receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url(), headers={header: "custom value loses"})
    configure_auth(subscription, **auth)
    delivery = make_delivery(subscription)
    drain()
    [request] = receiver.wait_for(1)
    assert request.headers[header.lower()] == value
    attempt = delivery.delivery_attempts.get()
    assert attempt.succeeded
    assert attempt.request_headers[header] == "<redacted>"
    assert "31337" not in str(attempt.request_headers)


@pytest.mark.parametrize(
    ("auth", "secret"),
    [
        ({"method": "basic", "username": "shop", "password": "pw-echo-4242"}, "pw-echo-4242"),
        ({"method": "bearer", "token": "tok-echo-4242"}, "tok-echo-4242"),
        ({"method": "api_key", "header_name": "X-Shop-Key", "token": "key-echo-4242"}, "key-echo-4242"),
    ],
)
def test_a_receiver_echoing_the_credentials_does_not_get_them_stored(
    auth, secret, receiver, make_subscription, make_delivery
):
    """A debugging endpoint (or an error page) that quotes the request's headers back."""
    from tests.receiver import Reply

    def echo(request):
        quoted = json.dumps(request.headers) + f" password={secret}"
        return Reply(400, quoted.encode(), headers={"X-Seen": request.headers.get("authorization", secret)})

    receiver.answer = echo
    subscription = make_subscription(url=receiver.url())
    configure_auth(subscription, **auth)
    delivery = make_delivery(subscription)
    drain()
    [request] = receiver.wait_for(1)
    sent = {value for name, value in request.headers.items() if name in ("authorization", "x-shop-key")}
    attempt = delivery.delivery_attempts.get()
    assert attempt.response_status == 400 and "<redacted>" in attempt.response_body
    stored = json.dumps(
        [attempt.response_body, attempt.response_headers, attempt.error_message, attempt.request_headers]
    )
    for credential in [secret, *sent, *(value.removeprefix("Basic ") for value in sent)]:
        assert credential not in stored


@pytest.fixture(scope="module")
def pki():
    ca = CertificateAuthority()
    return {
        "ca": ca,
        "server": ca.issue("localhost", server=True),
        "client": ca.issue("webhooks-sender", server=False),
        "stranger": CertificateAuthority("Other CA").issue("someone", server=False),
    }


@pytest.fixture
def mtls_receiver(pki, tmp_path: Path):
    cert = tmp_path / "server.crt"
    key = tmp_path / "server.key"
    cert.write_text(pki["server"].certificate)
    key.write_text(pki["server"].private_key)
    receiver = TLSReceiver(cert, key)
    receiver.context.verify_mode = ssl.CERT_REQUIRED
    receiver.context.load_verify_locations(cadata=pki["ca"].pem)
    receiver.start()
    yield receiver
    receiver.stop()


def test_mtls_receiver_gets_requests_with_the_client_certificate(pki, mtls_receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=mtls_receiver.url())
    configure_auth(
        subscription,
        client_certificate=pki["client"].certificate,
        client_key=pki["client"].private_key,
        ca_bundle=pki["ca"].pem,
    )
    deliveries = [make_delivery(subscription) for _ in range(3)]
    drain()
    assert len(mtls_receiver.wait_for(3)) == 3
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED


def test_mtls_receiver_refuses_a_request_without_a_client_certificate(
    pki, mtls_receiver, make_subscription, make_delivery
):
    subscription = make_subscription(url=mtls_receiver.url())
    configure_auth(subscription, ca_bundle=pki["ca"].pem)  # trusts the server, presents nothing
    delivery = make_delivery(subscription)
    drain()
    attempt = delivery.delivery_attempts.get()
    assert not attempt.succeeded
    assert attempt.error_class in (ErrorClass.TLS, ErrorClass.CONNECTION)
    assert mtls_receiver.received() == []


def test_mtls_receiver_refuses_a_certificate_of_another_ca(pki, mtls_receiver):
    tls = ClientTLS(pki["stranger"].certificate, pki["stranger"].private_key, pki["ca"].pem)
    result = Transport().send(mtls_receiver.url(), b"{}", {}, tls=tls)
    assert not result.succeeded and result.error_class in (ErrorClass.TLS, ErrorClass.CONNECTION)
    assert mtls_receiver.received() == []


def test_the_client_key_never_lands_on_disk(pki, mtls_receiver):
    before = set(os.listdir(tempfile.gettempdir()))
    tls = ClientTLS(pki["client"].certificate, pki["client"].private_key, pki["ca"].pem)
    assert Transport().send(mtls_receiver.url(), b"{}", {}, tls=tls).succeeded
    created = set(os.listdir(tempfile.gettempdir())) - before
    assert not [name for name in created if name.startswith("dwh-tls-")]


def test_the_key_file_fallback_is_private_and_removed(pki, mtls_receiver, monkeypatch, tmp_path):
    monkeypatch.delattr(os, "memfd_create")
    keys = tmp_path / "keys"
    keys.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(keys))
    modes = []
    real_load = ssl.SSLContext.load_cert_chain

    def load_cert_chain(self, certfile, keyfile=None, password=None):
        modes.append(os.stat(keyfile).st_mode & 0o777)
        assert b"ENCRYPTED PRIVATE KEY" in Path(keyfile).read_bytes()
        return real_load(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", load_cert_chain)
    tls = ClientTLS(pki["client"].certificate, pki["client"].private_key, pki["ca"].pem)
    assert Transport().send(mtls_receiver.url(), b"{}", {}, tls=tls).succeeded
    assert modes == [0o600]
    assert list(keys.iterdir()) == []

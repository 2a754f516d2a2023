"""End to end: real workers deliver to receivers that authenticate the sender, an OAuth2-protected
one (tokens from a real authorization server on loopback, tests/oauth_server) and a mutual TLS
one; afterwards no credential is found in any attempt, admin page, API response or log line.

The last test does that for every kind of credential at once (Basic, bearer, API key, OAuth2
client secret and ``private_key_jwt`` key, access tokens, the TLS client key, ``whsk_`` signing
keys and ``whsec_`` secrets), with receivers and a token endpoint that echo the request back."""

from __future__ import annotations

import json
import ssl

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.urls import reverse

from django_webhooks import crypto
from django_webhooks.delivery import broker
from django_webhooks.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    OAuthToken,
    ReceiverAuth,
    Subscription,
    SubscriptionSecret,
    SubscriptionSigningKey,
)
from django_webhooks.receiver_auth import configure_auth
from tests.oauth_server import OAuthServer
from tests.pki import CertificateAuthority
from tests.receiver import Reply
from tests.test_e2e_delivery import FAST, settle, wait_until
from tests.tls import TLSReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_settings(settings, fresh_brokers):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **FAST}


JWT_KEY = ec.generate_private_key(ec.SECP256R1())
JWT_KEY_PEM = JWT_KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()


@pytest.fixture
def oauth_server():
    public = JWT_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    server = OAuthServer(jwt_public_key=public.decode()).start()
    yield server
    server.stop()


def _all_succeeded(deliveries: list[Delivery]) -> bool:
    pks = [d.pk for d in deliveries]
    return Delivery.objects.filter(pk__in=pks, status=DeliveryStatus.SUCCEEDED).count() == len(pks)


def _pages(client, subscription) -> list[str]:
    """Every admin page and API response about the subscription and its deliveries."""
    pages = [
        client.get(reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])),
        client.get(reverse("admin:django_webhooks_subscription_changelist")),
        client.get(reverse("admin:django_webhooks_deliveryattempt_changelist")),
        client.get(f"/api/webhooks/subscriptions/{subscription.pk}/"),
        client.get("/api/webhooks/subscriptions/"),
        client.get("/api/webhooks/deliveries/", {"subscription": subscription.pk}),
    ]
    for attempt in DeliveryAttempt.objects.filter(subscription=subscription)[:20]:
        pages.append(client.get(reverse("admin:django_webhooks_deliveryattempt_change", args=[attempt.pk])))
        pages.append(client.get(reverse("admin:django_webhooks_delivery_change", args=[attempt.delivery_id])))
    for delivery in Delivery.objects.filter(subscription=subscription)[:20]:
        pages.append(client.get(f"/api/webhooks/deliveries/{delivery.pk}/"))
    assert all(page.status_code == 200 for page in pages), [page.status_code for page in pages]
    return [page.content.decode() for page in pages]


def _stored_rows() -> str:
    rows = [
        *DeliveryAttempt.objects.values(),
        *Delivery.objects.values("last_error"),
        *ReceiverAuth.objects.values(),
        *OAuthToken.objects.values(),
    ]
    return json.dumps(rows, default=str)


def test_oauth2_receiver_through_a_cluster(
    qcluster, oauth_server, make_subscription, make_delivery, admin_user, admin_client, caplog
):
    subscription = make_subscription(url=oauth_server.url("/hook"), owner_id=str(admin_user.pk))
    configure_auth(
        subscription,
        method="oauth2",
        token_url=oauth_server.token_url,
        client_id=oauth_server.client_id,
        client_secret=oauth_server.client_secret,
        scope="webhooks",
    )
    cluster = qcluster(FAST)
    deliveries = [make_delivery(subscription) for _ in range(100)]
    broker.enqueue_delivery(1)
    assert wait_until(lambda: _all_succeeded(deliveries), timeout=90)
    stats = oauth_server.stats()
    assert len(stats["hooks"]) == 100
    assert len(stats["token_requests"]) <= 2  # one per cluster, shared by its workers
    assert Delivery.objects.filter(pk__in=[d.pk for d in deliveries], attempts=1).count() == 100

    # The receiver's authorization server revokes the token: refreshed once, no retry spent.
    token_requests = len(stats["token_requests"])
    assert oauth_server.revoke_all() >= 1
    after = [make_delivery(subscription) for _ in range(3)]
    broker.enqueue_delivery(1)
    assert wait_until(lambda: _all_succeeded(after), timeout=60)
    stats = oauth_server.stats()
    assert len(stats["token_requests"]) == token_requests + 1
    assert 1 <= len(stats["refused"]) <= 2  # each worker holding the old token is refused once
    assert Delivery.objects.filter(pk__in=[d.pk for d in after], attempts=1).count() == 3
    settle(cluster)

    tokens = {hook["token"] for hook in stats["hooks"]} | {refused["token"] for refused in stats["refused"]}
    credentials = {oauth_server.client_secret, *tokens}
    assert len(tokens) == 2
    texts = [_stored_rows(), cluster.output(), caplog.text, *_pages(admin_client, subscription)]
    for credential in credentials:
        for text in texts:
            assert credential not in text


def test_mtls_receiver_through_a_cluster(
    qcluster, make_subscription, make_delivery, tmp_path, admin_user, admin_client
):
    ca = CertificateAuthority()
    server, client = ca.issue("localhost", server=True), ca.issue("sender", server=False)
    (tmp_path / "s.crt").write_text(server.certificate)
    (tmp_path / "s.key").write_text(server.private_key)
    receiver = TLSReceiver(tmp_path / "s.crt", tmp_path / "s.key")
    receiver.context.verify_mode = ssl.CERT_REQUIRED
    receiver.context.load_verify_locations(cadata=ca.pem)
    with receiver:
        with_certificate = make_subscription(url=receiver.url("/with"), owner_id=str(admin_user.pk))
        configure_auth(
            with_certificate, client_certificate=client.certificate, client_key=client.private_key, ca_bundle=ca.pem
        )
        without = make_subscription(url=receiver.url("/without"))
        configure_auth(without, ca_bundle=ca.pem)
        cluster = qcluster(FAST)
        good = make_delivery(with_certificate)
        refused = make_delivery(without)
        broker.enqueue_delivery(2)
        assert wait_until(lambda: _all_succeeded([good]), timeout=60)
        assert wait_until(lambda: DeliveryAttempt.objects.filter(delivery=refused).exists(), timeout=60)
        settle(cluster)
        assert [request.path for request in receiver.received()] == ["/with"]
        attempt = DeliveryAttempt.objects.filter(delivery=refused).first()
        assert attempt is not None and not attempt.succeeded and attempt.error_class in ("tls", "connection")
        key_body = client.private_key.splitlines()[1]
        for text in [_stored_rows(), cluster.output(), *_pages(admin_client, with_certificate)]:
            assert key_body not in text


def _echo(request):
    """A receiver (and token endpoint) that quotes the request's headers and body back, in its body and a header."""
    quoted = json.dumps({"headers": request.headers, "body": request.body.decode(errors="replace")})
    seen = request.headers.get("authorization") or request.headers.get("x-shop-key") or "-"
    if request.path.startswith("/handshake"):  # answers with the credential instead of the challenge
        return Reply(200, f"you sent {seen}".encode())
    if request.path.startswith("/token"):
        body = json.dumps({"error": "invalid_client", "error_description": quoted}).encode()
        return Reply(401, body, headers={"Content-Type": "application/json", "X-Seen": seen})
    return Reply(200, quoted.encode(), headers={"X-Seen": seen})


def _pem_lines(pem: str) -> list[str]:
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]


def _signing_credentials() -> list[str]:
    """Every ``whsec_`` secret and ``whsk_`` private key stored, decrypted."""
    rows = [*SubscriptionSecret.objects.all(), *SubscriptionSigningKey.objects.all()]
    return [crypto.decrypt_secret(row.encrypted) for row in rows]


def _every_page(client, subscriptions) -> list[str]:
    """Every admin page and API answer about the subscriptions, their deliveries and attempts (not
    the secret's reveal page and ``secret``/``rotate-secret`` answers, which show the ``whsec_``
    secret by design), and the admin form shown again with errors after secrets were typed in."""
    pages = [
        client.get(reverse(f"admin:django_webhooks_{model}_changelist"))
        for model in ("subscription", "delivery", "deliveryattempt")
    ]
    pages += [client.get(f"/api/webhooks/{resource}/") for resource in ("subscriptions", "deliveries", "events")]
    for subscription in subscriptions:
        pages.append(client.get(reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])))
        pages.append(client.get(reverse("admin:django_webhooks_subscription_history", args=[subscription.pk])))
        pages.append(client.get(f"/api/webhooks/subscriptions/{subscription.pk}/"))
        pages.append(client.get(f"/api/webhooks/subscriptions/{subscription.pk}/health/"))
        keys = client.get(f"/api/webhooks/subscriptions/{subscription.pk}/signing-keys/")
        pages += [keys, client.get(keys.json()["key_set_url"])]
    for attempt in DeliveryAttempt.objects.filter(subscription__in=subscriptions):
        pages.append(client.get(reverse("admin:django_webhooks_deliveryattempt_change", args=[attempt.pk])))
        pages.append(client.get(reverse("admin:django_webhooks_delivery_change", args=[attempt.delivery_id])))
        pages.append(client.get(f"/api/webhooks/deliveries/{attempt.delivery_id}/"))
    assert all(page.status_code == 200 for page in pages), [(page.status_code, page.request) for page in pages]
    return [page.content.decode() for page in pages]


def _form_shown_again(client, subscription, secrets: dict[str, str]) -> str:
    """The admin change form posted with every secret typed in and a mistake: the page shown again."""
    change_url = reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])
    form = client.get(change_url).context["adminform"].form
    data = {name: form.initial.get(name, field.initial) for name, field in form.fields.items()}
    data = {k: ("\n".join(v) if isinstance(v, list) else v) for k, v in data.items() if v is not None}
    data.update({"event_types": "*", "filters": "{}", "headers": "{}", "event_versions": "{}"})
    data.update({f"auth_{name}": value for name, value in secrets.items()})
    data.update({"auth_method": "api_key", "auth_header_name": "webhook-id"})  # refused: set by django-webhooks
    response = client.post(change_url, data)
    assert response.status_code == 200 and "auth_header_name" in response.context["adminform"].form.errors
    return response.content.decode()


def test_no_credential_of_any_kind_is_shown_after_a_run(
    qcluster, oauth_server, receiver, make_subscription, make_delivery, tmp_path, admin_user, admin_client, caplog
):
    ca = CertificateAuthority()
    server_certificate, client_certificate = ca.issue("localhost", server=True), ca.issue("sender", server=False)
    (tmp_path / "s.crt").write_text(server_certificate.certificate)
    (tmp_path / "s.key").write_text(server_certificate.private_key)
    tls_receiver = TLSReceiver(tmp_path / "s.crt", tmp_path / "s.key")
    tls_receiver.context.verify_mode = ssl.CERT_REQUIRED
    tls_receiver.context.load_verify_locations(cadata=ca.pem)
    receiver.answer = _echo
    owner = {"owner_id": str(admin_user.pk)}
    secrets = {
        "password": "leak-password-2718",
        "token": "leak-bearer-token-2718",
        "api_key": "leak-api-key-2718",
        "mtls_token": "leak-mtls-bearer-2718",
        "echoed_client_secret": "leak-client-secret-2718",
    }
    with tls_receiver:
        auths = {
            "basic": {"method": "basic", "username": "shop", "password": secrets["password"]},
            "bearer": {"method": "bearer", "token": secrets["token"]},
            "api_key": {"method": "api_key", "header_name": "X-Shop-Key", "token": secrets["api_key"]},
            "oauth2_post": {
                "method": "oauth2",
                "token_url": oauth_server.token_url,
                "client_id": oauth_server.client_id,
                "client_auth": "client_secret_post",
                "client_secret": oauth_server.client_secret,
                "scope": "webhooks",
            },
            "oauth2_jwt": {
                "method": "oauth2",
                "token_url": oauth_server.token_url,
                "client_id": oauth_server.client_id,
                "client_auth": "private_key_jwt",
                "private_key": JWT_KEY_PEM,
                "key_id": "k1",
                "scope": "webhooks",
            },
            "oauth2_echo": {
                "method": "oauth2",
                "token_url": receiver.url("/token"),
                "client_id": "sender",
                "client_secret": secrets["echoed_client_secret"],
            },
            "mtls": {
                "method": "bearer",
                "token": secrets["mtls_token"],
                "client_certificate": client_certificate.certificate,
                "client_key": client_certificate.private_key,
                "ca_bundle": ca.pem,
            },
        }
        urls = {
            "oauth2_post": oauth_server.url("/hook"),
            "oauth2_jwt": oauth_server.url("/hook"),
            "mtls": tls_receiver.url("/mtls"),
        }
        subscriptions = {}
        for name, auth in auths.items():
            subscription = make_subscription(
                url=urls.get(name, receiver.url(f"/{name}")), signature_scheme="both", **owner
            )
            configure_auth(subscription, **auth)
            subscriptions[name] = subscription
        # A handshake the echoing endpoint fails: its answer (the request's headers) is quoted in the error.
        handshake = make_subscription(url=receiver.url("/handshake"), verify_endpoint=True, **owner)
        configure_auth(handshake, method="bearer", token=secrets["token"])
        deliveries = [make_delivery(subscription) for subscription in subscriptions.values() for _ in range(2)]
        make_delivery(handshake)
        cluster = qcluster(FAST)
        broker.enqueue_delivery(2)
        sent = [d for d in deliveries if d.subscription_id != subscriptions["oauth2_echo"].pk]
        assert wait_until(lambda: _all_succeeded(sent), timeout=90)
        echo_failed = DeliveryAttempt.objects.filter(subscription=subscriptions["oauth2_echo"])
        assert wait_until(lambda: echo_failed.count() >= 2, timeout=60)
        assert wait_until(
            lambda: Subscription.objects.filter(pk=handshake.pk).exclude(verification_error="").exists(), timeout=60
        )
        settle(cluster)
        assert tls_receiver.received("/mtls")
    assert all(attempt.error_class == "auth" for attempt in echo_failed)
    handshake.refresh_from_db()
    assert "<redacted>" in handshake.verification_error and handshake.deliveries.get().attempts == 0
    assert receiver.received("/basic") and receiver.received("/token")

    stats = oauth_server.stats()
    assert {assertion["kid"] for assertion in stats["assertions"] if assertion["valid"]} == {"k1"}
    tokens = {hook["token"] for hook in stats["hooks"]}
    assert len(tokens) == 2
    sent_headers = {
        value
        for request in receiver.received()
        for name, value in request.headers.items()
        if name in ("authorization", "x-shop-key")
    }
    assert len(sent_headers) == 4  # Basic, bearer, API key, and the echoing token endpoint's Basic
    credentials = {
        *secrets.values(),
        oauth_server.client_secret,
        *tokens,
        *sent_headers,
        *(value.removeprefix("Basic ").removeprefix("Bearer ") for value in sent_headers),
        *_pem_lines(JWT_KEY_PEM),
        *_pem_lines(client_certificate.private_key),
        *_signing_credentials(),
    }
    assert sum(credential.startswith("whsk_") for credential in credentials) == len(subscriptions)
    typed = {"password": secrets["password"], "client_secret": "typed-client-secret-2718"}
    typed |= {"private_key": JWT_KEY_PEM, "client_key": client_certificate.private_key, "token": secrets["token"]}
    credentials.add(typed["client_secret"])
    texts = {
        "stored rows": _stored_rows(),
        "subscriptions": json.dumps(list(Subscription.objects.values()), default=str),
        "qcluster log": cluster.output(),
        "form shown again": _form_shown_again(admin_client, subscriptions["basic"], typed),
    }
    for index, page in enumerate(_every_page(admin_client, list(subscriptions.values()) + [handshake])):
        texts[f"page {index}"] = page
    texts["log records"] = caplog.text  # last: the pages above log too
    leaks = [
        (where, credential[:24]) for where, text in texts.items() for credential in credentials if credential in text
    ]
    assert leaks == []

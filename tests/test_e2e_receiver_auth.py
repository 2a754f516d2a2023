"""End to end: real workers deliver to receivers that authenticate the sender, an OAuth2-protected
one (tokens from a real authorization server on loopback, tests/oauth_server) and a mutual TLS
one; afterwards no credential is found in any attempt, admin page, API response or log line."""

from __future__ import annotations

import json
import ssl

import pytest
from django.urls import reverse

from django_webhooks.delivery import broker
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, OAuthToken, ReceiverAuth
from django_webhooks.receiver_auth import configure_auth
from tests.oauth_server import OAuthServer
from tests.pki import CertificateAuthority
from tests.test_e2e_delivery import FAST, settle, wait_until
from tests.tls import TLSReceiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def fast_settings(settings, fresh_brokers):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **FAST}


@pytest.fixture
def oauth_server():
    server = OAuthServer().start()
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

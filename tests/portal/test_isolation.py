"""The isolation matrix of the portal: every URL and method, with another owner's ids, a read-only
session, and links that are expired, reused or tampered with.

The URL list is read from the portal's URLconf, so a page added later is in the matrix (or the
test that every URL is covered fails).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import get_resolver
from django.utils import timezone

from django_webhooks import secret_store
from django_webhooks.models import AuditLogEntry, Delivery, DeliveryAttempt, Subscription, SubscriptionSecret
from django_webhooks.portal import urls as portal_urls
from django_webhooks.portal.links import make_token, portal_link
from tests.portal import url

pytestmark = pytest.mark.django_db

#: URL name -> which object its ``pk`` is, and the methods it answers.
MATRIX = {
    "endpoints": (None, ["GET"]),
    "endpoint-create": (None, ["GET", "POST"]),
    "endpoint": ("subscription", ["GET"]),
    "endpoint-edit": ("subscription", ["GET", "POST"]),
    "endpoint-delete": ("subscription", ["GET", "POST"]),
    "endpoint-enable": ("subscription", ["POST"]),
    "endpoint-disable": ("subscription", ["POST"]),
    "secret": ("subscription", ["GET", "POST"]),
    "secret-rotate": ("subscription", ["POST"]),
    "endpoint-test": ("subscription", ["POST"]),
    "endpoint-recover": ("subscription", ["POST"]),
    "deliveries": (None, ["GET"]),
    "delivery": ("delivery", ["GET"]),
    "delivery-resend": ("delivery", ["POST"]),
    "event-types": (None, ["GET"]),
    "enter": ("token", ["GET"]),
    "leave": (None, ["POST"]),
}
WITH_IDS = [name for name, (kind, _methods) in MATRIX.items() if kind in ("subscription", "delivery")]
POSTS = [name for name, (kind, methods) in MATRIX.items() if "POST" in methods and name not in ("leave",)]

#: Form data that would be valid for the owner's own object, so a 404 is the owner check, not validation.
VALID = {
    "endpoint-edit": {"url": "http://127.0.0.1:9/x", "event_types": ["order.created"], "payload_format": "standard"},
    "endpoint-create": {"url": "http://127.0.0.1:9/x", "event_types": ["order.created"], "payload_format": "standard"},
    "endpoint-disable": {"reason": "x"},
    "endpoint-test": {"event_type": "webhook.test"},
    "endpoint-recover": {"since": "2020-01-01T00:00"},
}


def test_the_matrix_covers_every_portal_url():
    names = {pattern.name for pattern in get_resolver(portal_urls).url_patterns}
    assert names == set(MATRIX)


def snapshot():
    """Everything a request could change, so "nothing changed" is checked, not assumed."""
    return (
        list(Subscription.objects.order_by("pk").values()),
        list(SubscriptionSecret.objects.order_by("pk").values_list("pk", "expires_at")),
        list(Delivery.objects.order_by("pk").values()),
        DeliveryAttempt.objects.count(),
        AuditLogEntry.objects.count(),
    )


@pytest.fixture
def objects(bob_endpoint, bob_delivery, alice_endpoint, alice_delivery):
    return {"subscription": bob_endpoint.pk, "delivery": bob_delivery.pk}


def alice_by_link(alice) -> Client:
    client = Client()
    assert client.get(portal_link(alice)).status_code == 302
    return client


@pytest.mark.parametrize("way_in", ["login", "link"])
@pytest.mark.parametrize("name", WITH_IDS)
def test_another_owners_ids_are_404_on_every_method(alice, alice_client, objects, name, way_in):
    client = alice_client if way_in == "login" else alice_by_link(alice)
    kind, methods = MATRIX[name]
    before = snapshot()
    for method in methods:
        response = getattr(client, method.lower())(url(name, objects[kind]), VALID.get(name, {}))
        assert response.status_code == 404, (name, method)
    assert snapshot() == before
    bobs_secret = secret_store.current_secret(Subscription.objects.get(pk=objects["subscription"]))
    assert bobs_secret not in client.get(url("endpoints")).content.decode()


@pytest.mark.parametrize("name", WITH_IDS)
def test_unknown_ids_are_404_too(alice_client, objects, name):
    kind, methods = MATRIX[name]
    for method in methods:
        assert getattr(alice_client, method.lower())(url(name, 10**12)).status_code == 404


@pytest.mark.parametrize("name", ["endpoints", "deliveries", "event-types"])
def test_lists_show_only_the_owners_objects(alice_client, objects, bob_delivery, name):
    page = alice_client.get(url(name)).content.decode()
    assert "Bob shop" not in page
    assert bob_delivery.message_id not in page


def test_the_log_filter_by_another_owners_endpoint_shows_nothing(alice_client, objects, bob_delivery):
    response = alice_client.get(url("deliveries"), {"endpoint": objects["subscription"]})
    assert list(response.context["deliveries"]) == []


@pytest.mark.parametrize("name", POSTS)
def test_a_read_only_session_is_refused_every_post(alice, alice_endpoint, alice_delivery, name):
    client = Client()
    assert client.get(portal_link(alice, scope="read")).status_code == 302
    kind, _methods = MATRIX[name]
    args = {"subscription": (alice_endpoint.pk,), "delivery": (alice_delivery.pk,), None: ()}[kind]
    before = snapshot()
    response = client.post(url(name, *args), VALID.get(name, {}))
    assert response.status_code == 403
    assert "Read-only access" in response.content.decode()
    assert snapshot() == before


@pytest.mark.parametrize("name", [name for name, (kind, _m) in MATRIX.items() if kind != "token" and name != "leave"])
def test_without_login_or_link_every_url_sends_to_the_login(client, objects, name):
    kind, methods = MATRIX[name]
    args = (objects[kind],) if kind else ()
    for method in methods:
        response = getattr(client, method.lower())(url(name, *args))
        assert response.status_code == 302, (name, method)
        assert "/login/" in response["Location"]


@pytest.mark.parametrize(
    "make,status,says",
    [
        (lambda alice: make_token(alice, expires_in=1, now=timezone.now() - timedelta(seconds=5)), 410, "expired"),
        (lambda alice: make_token(alice)[:-2], 403, "not valid"),
        (lambda alice: make_token(alice).replace(":", "%3A"), 403, "not valid"),
        (lambda alice: "..", 403, "not valid"),
        (lambda alice: "\x00", 403, "not valid"),
    ],
)
def test_bad_links_give_a_clear_page(alice, make, status, says):
    response = Client().get(url("enter", make(alice)))
    assert response.status_code == status
    page = response.content.decode()
    assert says in page
    assert '<main id="dwh-main"' in page


def test_a_reused_link_gives_a_clear_page(alice):
    link = portal_link(alice)
    Client().get(link)
    response = Client().get(link)
    assert response.status_code == 410
    assert "already used" in response.content.decode()


def test_methods_a_url_does_not_answer_are_405(alice_client, alice_endpoint):
    assert alice_client.post(url("endpoints")).status_code == 405
    assert alice_client.get(url("endpoint-enable", alice_endpoint.pk)).status_code == 405
    assert alice_client.put(url("endpoint", alice_endpoint.pk)).status_code == 405

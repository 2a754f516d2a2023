"""Tenant isolation: no endpoint lets one owner see or touch another's objects.

For every detail endpoint and method, owner A using owner B's ids gets a 404 (a 403 would tell
A the id exists) and B's objects are unchanged; no list ever includes B's objects; calls without
authentication are refused.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.test import APIClient

from django_webhooks import secret_store
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription
from tests.api import API

pytestmark = pytest.mark.django_db

PAST = (timezone.now() - timedelta(days=1)).isoformat()

#: Every detail endpoint: (method, path with {sub} / {event} / {delivery}, body).
DETAIL_ENDPOINTS = [
    ("get", "subscriptions/{sub}/", None),
    ("put", "subscriptions/{sub}/", {"url": "http://127.0.0.1:9/a", "event_types": ["*"]}),
    ("patch", "subscriptions/{sub}/", {"description": "taken over"}),
    ("delete", "subscriptions/{sub}/", None),
    ("post", "subscriptions/{sub}/enable/", {}),
    ("post", "subscriptions/{sub}/disable/", {"reason": "taken over"}),
    ("get", "subscriptions/{sub}/secret/", None),
    ("post", "subscriptions/{sub}/rotate-secret/", {"overlap_seconds": 0}),
    ("get", "subscriptions/{sub}/signing-keys/", None),
    ("post", "subscriptions/{sub}/rotate-signing-key/", {"overlap_seconds": 0}),
    ("post", "subscriptions/{sub}/test/", {}),
    ("post", "subscriptions/{sub}/recover/", {"since": PAST}),
    ("get", "subscriptions/{sub}/health/", None),
    ("get", "subscriptions/{sub}/stats/", None),
    ("get", "events/{event}/", None),
    ("get", "deliveries/{delivery}/", None),
    ("post", "deliveries/{delivery}/resend/", {}),
]
LIST_ENDPOINTS = ["subscriptions/", "events/", "deliveries/"]


def make_tenant(name, make_subscription, make_delivery):
    user = get_user_model().objects.create_user(name)
    owner_id = str(user.pk)
    subscription = make_subscription("http://127.0.0.1:9/hook", owner_id=owner_id, description=name)
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    Event.objects.filter(pk=delivery.event_id).update(owner_id=owner_id)
    DeliveryAttempt.objects.create(
        delivery=delivery, subscription=subscription, attempt_number=1, url=subscription.url, response_status=500
    )
    client = APIClient()
    client.force_authenticate(user)
    ids = {"sub": subscription.pk, "event": delivery.event_id, "delivery": delivery.pk}
    return client, ids, subscription


@pytest.fixture
def tenants(make_subscription, make_delivery):
    alice = make_tenant("alice", make_subscription, make_delivery)
    bob = make_tenant("bob", make_subscription, make_delivery)
    return alice, bob


def snapshot(subscription):
    delivery = Delivery.objects.get(subscription=subscription)
    return (
        Subscription.objects.filter(pk=subscription.pk).values().first(),
        secret_store.signing_secrets(subscription),
        secret_store.public_signing_keys(subscription),
        (delivery.status, delivery.next_attempt_at),
        Event.objects.filter(owner_id=subscription.owner_id).count(),
    )


@pytest.mark.parametrize("method,path,body", DETAIL_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in DETAIL_ENDPOINTS])
def test_another_owners_ids_are_not_found(tenants, method, path, body):
    (alice, alice_ids, _), (_bob, bob_ids, bob_subscription) = tenants
    before = snapshot(bob_subscription)
    response = getattr(alice, method)(f"{API}/{path.format(**bob_ids)}", body, format="json")
    assert response.status_code == 404, (response.status_code, response.content)
    assert before == snapshot(bob_subscription)
    assert "bob" not in response.content.decode()


@pytest.mark.parametrize("method,path,body", DETAIL_ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in DETAIL_ENDPOINTS])
def test_the_same_call_on_own_ids_is_not_a_404(tenants, method, path, body):
    (alice, alice_ids, _), _bob = tenants
    response = getattr(alice, method)(f"{API}/{path.format(**alice_ids)}", body, format="json")
    assert response.status_code in (200, 201, 202, 204), (response.status_code, response.content)


@pytest.mark.parametrize("path", LIST_ENDPOINTS)
def test_lists_hold_only_own_objects(tenants, path):
    (alice, alice_ids, _), (bob, bob_ids, _) = tenants
    key = {"subscriptions/": "sub", "events/": "event", "deliveries/": "delivery"}[path]
    for client, own, other in ((alice, alice_ids, bob_ids), (bob, bob_ids, alice_ids)):
        ids = [item["id"] for item in client.get(f"{API}/{path}").json()["results"]]
        assert ids == [own[key]]
        assert other[key] not in ids


def test_list_filters_cannot_reach_another_owner(tenants):
    (alice, _, _), (_bob, bob_ids, _) = tenants
    response = alice.get(f"{API}/deliveries/", {"subscription": bob_ids["sub"]})
    assert response.status_code == 200
    assert response.json()["results"] == []


def test_created_objects_belong_to_the_requesting_owner(tenants):
    (alice, _, alice_subscription), (bob, _, _) = tenants
    response = alice.post(
        f"{API}/subscriptions/", {"url": "http://127.0.0.1:9/new", "event_types": ["*"]}, format="json"
    )
    assert Subscription.objects.get(pk=response.json()["id"]).owner_id == alice_subscription.owner_id
    assert response.json()["id"] not in [item["id"] for item in bob.get(f"{API}/subscriptions/").json()["results"]]


def test_test_events_show_only_in_the_senders_lists(tenants):
    (alice, alice_ids, _), (bob, _, _) = tenants
    alice.post(f"{API}/subscriptions/{alice_ids['sub']}/test/", {}, format="json")
    assert len(alice.get(f"{API}/events/").json()["results"]) == 2
    assert len(bob.get(f"{API}/events/").json()["results"]) == 1
    assert len(bob.get(f"{API}/deliveries/").json()["results"]) == 1


@pytest.mark.parametrize(
    "method,path,body",
    [("get", "event-types/", None), ("get", "event-types/order.created/", None), ("get", "subscriptions/", None)]
    + [("get", p, None) for p in LIST_ENDPOINTS]
    + [("post", "subscriptions/", {"url": "http://127.0.0.1:9/x", "event_types": ["*"]})]
    + DETAIL_ENDPOINTS,
)
def test_unauthenticated_calls_are_refused(tenants, method, path, body):
    _alice, (_bob, bob_ids, bob_subscription) = tenants
    before = snapshot(bob_subscription)
    response = getattr(APIClient(), method)(f"{API}/{path.format(**bob_ids)}", body, format="json")
    assert response.status_code in (401, 403)
    assert before == snapshot(bob_subscription)


def test_another_owners_pending_delivery_cannot_be_cancelled(tenants):
    (alice, alice_ids, _), (_bob, bob_ids, _) = tenants
    Delivery.objects.filter(pk__in=[alice_ids["delivery"], bob_ids["delivery"]]).update(status=DeliveryStatus.PENDING)
    path = f"{API}/deliveries/{bob_ids['delivery']}/cancel/"
    assert alice.post(path, {}, format="json").status_code == 404
    assert APIClient().post(path, {}, format="json").status_code in (401, 403)
    assert Delivery.objects.get(pk=bob_ids["delivery"]).status == DeliveryStatus.PENDING
    own = alice.post(f"{API}/deliveries/{alice_ids['delivery']}/cancel/", {}, format="json")
    assert own.status_code == 200 and own.json()["status"] == DeliveryStatus.CANCELLED

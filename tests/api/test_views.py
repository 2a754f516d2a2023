"""The API's resources and actions, as a customer uses them (django_webhooks/api/views.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_webhooks import secret_store
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, EventType, Subscription
from django_webhooks.receiving import verify
from tests.api import API
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(alice, make_subscription, receiver):
    return make_subscription(receiver.url("/hook"), owner_id=str(alice.pk), event_types=["order.*"])


def own_delivery(make_delivery, subscription, **fields):
    delivery = make_delivery(subscription, **fields)
    Event.objects.filter(pk=delivery.event_id).update(owner_id=subscription.owner_id)
    return delivery


# -- authentication and owners ---------------------------------------------------------------------


def test_host_authentication_classes_are_used(alice):
    api = APIClient()
    assert api.get(f"{API}/subscriptions/").status_code in (401, 403)
    api.credentials(HTTP_AUTHORIZATION="Basic YWxpY2U6YWxpY2UtcGFzcw==")  # alice:alice-pass
    assert api.get(f"{API}/subscriptions/").status_code == 200


def test_a_user_without_an_owner_gets_a_clear_403(client):
    resolver = "tests.api.test_views.no_owner"
    with override_settings(DJANGO_WEBHOOKS={"OWNER_RESOLVER": resolver, "ALLOW_LOOPBACK": True}):
        response = client.get(f"{API}/subscriptions/")
    assert response.status_code == 403
    assert "not linked to a webhook owner" in response.json()["detail"]


def no_owner(request):
    return None


def test_staff_see_every_owner_only_when_the_setting_allows_it(make_subscription):
    staff = get_user_model().objects.create_user("staff", is_staff=True)
    make_subscription(owner_id="someone-else")
    api = APIClient()
    api.force_authenticate(staff)
    assert api.get(f"{API}/subscriptions/?all_owners=1").json()["results"] == []
    with override_settings(DJANGO_WEBHOOKS={"API_STAFF_SEES_ALL": True, "ALLOW_LOOPBACK": True}):
        assert len(api.get(f"{API}/subscriptions/?all_owners=1").json()["results"]) == 1
        assert api.get(f"{API}/subscriptions/").json()["results"] == []
    api.force_authenticate(get_user_model().objects.create_user("bob"))
    with override_settings(DJANGO_WEBHOOKS={"API_STAFF_SEES_ALL": True, "ALLOW_LOOPBACK": True}):
        assert api.get(f"{API}/subscriptions/?all_owners=1").json()["results"] == []


# -- event types -----------------------------------------------------------------------------------


def test_event_types_merge_settings_and_rows_without_archived_ones(client):
    EventType.objects.create(name="invoice.paid", description="An invoice was paid.", schema={"type": "object"})
    EventType.objects.create(name="order.deleted", archived=True)
    names = [item["name"] for item in client.get(f"{API}/event-types/").json()]
    # The operational types are built in: customers subscribe to them like to any other.
    assert names == [
        "invoice.paid",
        "order.created",
        "order.updated",
        "webhook.endpoint.disabled",
        "webhook.endpoint.failing",
        "webhook.endpoint.recovered",
    ]

    order = client.get(f"{API}/event-types/order.created/").json()
    assert order["description"] == "An order was placed."
    assert order["example"]["number"] == "A-1001"
    invoice = client.get(f"{API}/event-types/invoice.paid/").json()
    assert invoice["schema"] == {"type": "object"}
    assert client.get(f"{API}/event-types/order.deleted/").status_code == 404
    assert client.get(f"{API}/event-types/nope.nope/").status_code == 404


# -- subscriptions ---------------------------------------------------------------------------------


def test_create_generates_a_secret_that_only_the_secret_endpoint_shows(client, alice, receiver):
    response = client.post(
        f"{API}/subscriptions/",
        {"url": receiver.url("/hook"), "event_types": ["order.created", "order.*"], "headers": {"X-Team": "ops"}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert "secret" not in body
    subscription = Subscription.objects.get(pk=body["id"])
    assert subscription.owner_id == str(alice.pk)
    assert subscription.headers == {"X-Team": "ops"}

    listed = client.get(f"{API}/subscriptions/").json()["results"]
    assert [item["id"] for item in listed] == [subscription.pk]
    assert all("secret" not in item for item in listed)
    assert "secret" not in client.get(f"{API}/subscriptions/{subscription.pk}/").json()

    secret = client.get(f"{API}/subscriptions/{subscription.pk}/secret/").json()["secret"]
    assert secret.startswith("whsec_")
    assert secret == secret_store.current_secret(subscription)


def test_create_with_own_secret(client, receiver):
    mine = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    response = client.post(
        f"{API}/subscriptions/", {"url": receiver.url(), "event_types": ["*"], "secret": mine}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert client.get(f"{API}/subscriptions/{response.json()['id']}/secret/").json()["secret"] == mine


def test_update_partial_update_and_delete(client, subscription):
    url = f"{API}/subscriptions/{subscription.pk}/"
    response = client.patch(url, {"description": "ERP", "event_types": ["order.created"]}, format="json")
    assert response.status_code == 200, response.json()
    response = client.put(
        url, {"url": subscription.url, "event_types": ["order.updated"], "ordered": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    subscription.refresh_from_db()
    assert (subscription.event_types, subscription.ordered) == (["order.updated"], True)
    assert client.delete(url).status_code == 204
    assert not Subscription.objects.filter(pk=subscription.pk).exists()


def test_disable_and_enable(client, subscription):
    response = client.post(f"{API}/subscriptions/{subscription.pk}/disable/", {"reason": "maintenance"}, format="json")
    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (False, "maintenance")
    response = client.post(f"{API}/subscriptions/{subscription.pk}/enable/")
    assert response.status_code == 200
    assert (response.json()["enabled"], response.json()["disabled_reason"]) == (True, "")
    subscription.refresh_from_db()
    assert subscription.enabled


def test_rotate_keeps_the_old_secret_signing_for_the_overlap(client, subscription):
    old = secret_store.current_secret(subscription)
    response = client.post(
        f"{API}/subscriptions/{subscription.pk}/rotate-secret/", {"overlap_seconds": 3600}, format="json"
    )
    assert response.status_code == 200, response.json()
    new = response.json()["secret"]
    assert new != old
    assert secret_store.signing_secrets(subscription) == [new, old]
    assert client.get(f"{API}/subscriptions/{subscription.pk}/secret/").json()["secret"] == new

    immediate = client.post(
        f"{API}/subscriptions/{subscription.pk}/rotate-secret/", {"overlap_seconds": 0}, format="json"
    )
    later = timezone.now() + timedelta(seconds=1)
    assert secret_store.signing_secrets(subscription, now=later) == [immediate.json()["secret"]]


def test_health_figures(client, subscription):
    response = client.get(f"{API}/subscriptions/{subscription.pk}/health/")
    assert response.status_code == 200
    assert response.json()["circuit_state"] == "closed"
    assert response.json()["attempts_24h"] == 0


def test_recover_requeues_failed_deliveries_since_a_time(client, subscription, make_delivery):
    old = own_delivery(make_delivery, subscription, status=DeliveryStatus.EXHAUSTED)
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    failed = own_delivery(make_delivery, subscription, status=DeliveryStatus.FAILED)
    ok = own_delivery(make_delivery, subscription, status=DeliveryStatus.SUCCEEDED)
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    response = client.post(f"{API}/subscriptions/{subscription.pk}/recover/", {"since": since}, format="json")
    assert response.status_code == 202
    assert response.json() == {"recovered": 1}
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses == {old.pk: "exhausted", failed.pk: "pending", ok.pk: "succeeded"}


# -- events and deliveries -------------------------------------------------------------------------


def test_events_list_and_detail(client, alice):
    mine = Event.objects.create(event_type="order.created", payload={"id": 1}, owner_id=str(alice.pk))
    Event.objects.create(event_type="order.created", payload={"id": 2}, owner_id=None)
    Event.objects.create(event_type="order.updated", payload={"id": 3}, owner_id=str(alice.pk))
    listed = client.get(f"{API}/events/").json()["results"]
    assert [item["event_type"] for item in listed] == ["order.updated", "order.created"]
    filtered = client.get(f"{API}/events/", {"event_type": "order.created"}).json()["results"]
    assert [item["id"] for item in filtered] == [mine.pk]
    assert client.get(f"{API}/events/{mine.pk}/").json()["data"] == {"id": 1}


def test_deliveries_nest_every_attempt(client, subscription, make_delivery):
    delivery = own_delivery(make_delivery, subscription, status=DeliveryStatus.FAILED, attempts=2)
    for number, status in ((1, 500), (2, 503)):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            subscription=subscription,
            attempt_number=number,
            url=subscription.url,
            response_status=status,
        )
    detail = client.get(f"{API}/deliveries/{delivery.pk}/").json()
    assert [attempt["response_status"] for attempt in detail["attempts"]] == [500, 503]
    assert detail["event"]["event_type"] == "order.created"
    assert detail["message_id"] == delivery.message_id
    listed = client.get(f"{API}/deliveries/").json()["results"]
    assert [len(item["attempts"]) for item in listed] == [2]


def test_delivery_filters(client, alice, subscription, make_subscription, make_delivery):
    other = make_subscription(subscription.url, owner_id=str(alice.pk))
    now = timezone.now()
    old = own_delivery(make_delivery, subscription, status=DeliveryStatus.FAILED, created_at=now - timedelta(days=3))
    paid = own_delivery(make_delivery, subscription, event_type="order.updated", status=DeliveryStatus.SUCCEEDED)
    elsewhere = own_delivery(make_delivery, other, status=DeliveryStatus.FAILED)

    def ids(**params):
        response = client.get(f"{API}/deliveries/", params)
        assert response.status_code == 200, response.json()
        return {item["id"] for item in response.json()["results"]}

    assert ids() == {old.pk, paid.pk, elsewhere.pk}
    assert ids(status="failed") == {old.pk, elsewhere.pk}
    assert ids(event_type="order.updated") == {paid.pk}
    assert ids(subscription=other.pk) == {elsewhere.pk}
    assert ids(created_before=(now - timedelta(days=1)).isoformat()) == {old.pk}
    assert ids(created_after=(now - timedelta(days=1)).isoformat()) == {paid.pk, elsewhere.pk}
    assert ids(status="failed", subscription=subscription.pk) == {old.pk}


@pytest.mark.parametrize(
    "params,field",
    [
        ({"status": "lost"}, "status"),
        ({"subscription": "abc"}, "subscription"),
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_after": "2026-01-02T00:00:00Z", "created_before": "2026-01-01T00:00:00Z"}, "created_before"),
        ({"event_type": "order..created"}, "event_type"),
    ],
)
def test_bad_delivery_filters_are_400s_naming_the_parameter(client, params, field):
    response = client.get(f"{API}/deliveries/", params)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("value", ["%00", "a%00b", "%ED%A0%80", "%FF", "9" * 400])
@pytest.mark.parametrize(
    "resource,parameter",
    [
        ("events", "event_type"),
        ("events", "created_after"),
        ("deliveries", "event_type"),
        ("deliveries", "created_before"),
        ("deliveries", "status"),
        ("deliveries", "subscription"),
    ],
)
def test_nul_and_broken_utf8_in_query_filters_are_400s_naming_the_parameter(
    client, subscription, resource, parameter, value
):
    response = client.get(f"{API}/{resource}/?{parameter}={value}")
    assert response.status_code == 400
    assert parameter in response.json()


@pytest.mark.parametrize("parameter", ["page_size", "all_owners", "unknown"])
def test_nul_in_other_query_parameters_is_ignored(client, subscription, parameter):
    for resource in ("subscriptions", "events", "deliveries"):
        assert client.get(f"{API}/{resource}/?{parameter}=%00").status_code == 200


def test_cursor_pagination_walks_every_delivery_once(client, subscription, make_delivery):
    created = {own_delivery(make_delivery, subscription).pk for _ in range(7)}
    seen: list[int] = []
    url = f"{API}/deliveries/?page_size=3"
    for _ in range(10):
        page = client.get(url).json()
        assert len(page["results"]) <= 3
        seen += [item["id"] for item in page["results"]]
        if not page["next"]:
            break
        url = page["next"]
    assert sorted(seen) == sorted(created)
    assert seen == sorted(created, reverse=True)
    assert client.get(f"{API}/deliveries/?cursor=garbage").status_code == 404


def test_resend_puts_a_final_delivery_back_in_the_queue(client, subscription, make_delivery):
    delivery = own_delivery(make_delivery, subscription, status=DeliveryStatus.EXHAUSTED, next_attempt_at=None)
    response = client.post(f"{API}/deliveries/{delivery.pk}/resend/")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None


# -- the whole journey -----------------------------------------------------------------------------


def test_customer_journey_create_test_rotate_recover(client, receiver):
    receiver.script = [Reply(200)]
    created = client.post(
        f"{API}/subscriptions/", {"url": receiver.url("/hook"), "event_types": ["order.*"]}, format="json"
    )
    assert created.status_code == 201, created.json()
    sub_url = f"{API}/subscriptions/{created.json()['id']}"
    secret = client.get(f"{sub_url}/secret/").json()["secret"]

    tested = client.post(f"{sub_url}/test/", {"event_type": "order.created"}, format="json")
    assert tested.status_code == 200, tested.json()
    attempt = tested.json()
    assert attempt["succeeded"] and attempt["response_status"] == 200
    request = receiver.wait_for(1)[0]
    verify(request.headers, request.body, secret)
    assert b'"A-1001"' in request.body

    deliveries = client.get(f"{API}/deliveries/", {"subscription": created.json()["id"]}).json()["results"]
    assert [d["attempts"][0]["id"] for d in deliveries] == [attempt["id"]]
    assert deliveries[0]["status"] == "succeeded"

    new_secret = client.post(f"{sub_url}/rotate-secret/", {}, format="json").json()["secret"]
    receiver.script = [Reply(200)]
    client.post(f"{sub_url}/test/", {}, format="json")
    second = receiver.wait_for(2)[1]
    verify(second.headers, second.body, new_secret)
    verify(second.headers, second.body, secret)

    Delivery.objects.filter(pk=deliveries[0]["id"]).update(status=DeliveryStatus.EXHAUSTED)
    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    recovered = client.post(f"{sub_url}/recover/", {"since": since}, format="json")
    assert recovered.status_code == 202
    assert recovered.json()["recovered"] == 1
    assert Delivery.objects.get(pk=deliveries[0]["id"]).status == DeliveryStatus.PENDING

"""POST deliveries/{id}/cancel/: a pending delivery becomes cancelled; anything else is a 409."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_webhooks.models import Delivery, DeliveryStatus, Event
from tests.api import API

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(alice, make_subscription):
    return make_subscription(owner_id=str(alice.pk))


def own_delivery(make_delivery, subscription, **fields):
    delivery = make_delivery(subscription, **fields)
    Event.objects.filter(pk=delivery.event_id).update(owner_id=subscription.owner_id)
    return delivery


def test_a_pending_delivery_is_cancelled(client, subscription, make_delivery):
    retry_at = timezone.now() + timedelta(minutes=10)
    delivery = own_delivery(
        make_delivery, subscription, status=DeliveryStatus.PENDING, attempts=2, next_attempt_at=retry_at
    )
    response = client.post(f"{API}/deliveries/{delivery.pk}/cancel/")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["id"], body["status"], body["attempt_count"]) == (delivery.pk, "cancelled", 2)
    assert body["next_attempt_at"] is None and body["completed_at"] is not None
    stored = Delivery.objects.get(pk=delivery.pk)
    assert stored.status == DeliveryStatus.CANCELLED
    # Final, so the filter finds it, and resend brings it back.
    listed = client.get(f"{API}/deliveries/", {"status": "cancelled"}).json()["results"]
    assert [item["id"] for item in listed] == [delivery.pk]
    assert client.post(f"{API}/deliveries/{delivery.pk}/resend/").json()["status"] == "pending"


@pytest.mark.parametrize(
    "status",
    [
        DeliveryStatus.IN_FLIGHT,
        DeliveryStatus.SUCCEEDED,
        DeliveryStatus.FAILED,
        DeliveryStatus.EXHAUSTED,
        DeliveryStatus.CANCELLED,
    ],
)
def test_a_delivery_that_is_not_pending_is_a_409_and_unchanged(client, subscription, make_delivery, status):
    delivery = own_delivery(make_delivery, subscription, status=status)
    before = Delivery.objects.filter(pk=delivery.pk).values().get()
    response = client.post(f"{API}/deliveries/{delivery.pk}/cancel/")
    assert response.status_code == 409
    assert response.json()["detail"] == f"Only a pending delivery can be cancelled; this one is {status}."
    assert Delivery.objects.filter(pk=delivery.pk).values().get() == before


def test_cancelling_unblocks_the_next_delivery_of_an_ordered_subscription(
    alice, client, make_subscription, make_delivery
):
    from django_webhooks import testing

    ordered = make_subscription(owner_id=str(alice.pk), ordered=True)
    later = timezone.now() + timedelta(hours=1)
    head = own_delivery(make_delivery, ordered, status=DeliveryStatus.PENDING, attempts=1, next_attempt_at=later)
    second = own_delivery(make_delivery, ordered, status=DeliveryStatus.PENDING)
    with testing.capture_webhooks() as sent:
        assert testing.drain() == 0  # the second waits for the head's retry
        assert client.post(f"{API}/deliveries/{head.pk}/cancel/").status_code == 200
        assert testing.drain() == 1
    assert [webhook.webhook_id for webhook in sent] == [second.message_id]
    assert Delivery.objects.get(pk=second.pk).status == DeliveryStatus.SUCCEEDED


def test_the_schema_documents_the_409():
    from drf_spectacular.generators import SchemaGenerator

    operation = SchemaGenerator().get_schema(request=None, public=True)["paths"][f"{API}/deliveries/{{id}}/cancel/"]
    responses = operation["post"]["responses"]
    assert {"200", "409", "404"} <= set(responses)
    assert operation["post"]["summary"] == "Cancel a pending delivery"

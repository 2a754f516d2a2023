"""Cancelling pending deliveries from the delivery admin: its button, its list action, permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from django_webhooks.models import Delivery, DeliveryStatus
from tests.admin import messages_of, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliveries(make_subscription, make_delivery):
    subscription = make_subscription()
    later = timezone.now() + timedelta(minutes=5)
    return {
        "pending": make_delivery(subscription, status=DeliveryStatus.PENDING, attempts=1, next_attempt_at=later),
        "in_flight": make_delivery(
            subscription, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=timezone.now() + timedelta(seconds=20)
        ),
        "succeeded": make_delivery(subscription, status=DeliveryStatus.SUCCEEDED, attempts=1),
    }


def status_of(delivery) -> str:
    return Delivery.objects.get(pk=delivery.pk).status


def test_the_cancel_button_shows_on_pending_deliveries_only(admin_client, deliveries):
    pending = admin_client.get(url("delivery_change", deliveries["pending"].pk)).content.decode()
    assert url("delivery_cancel", deliveries["pending"].pk) in pending
    for name in ("in_flight", "succeeded"):
        html = admin_client.get(url("delivery_change", deliveries[name].pk)).content.decode()
        assert url("delivery_cancel", deliveries[name].pk) not in html


def test_cancelling_a_pending_delivery(admin_client, deliveries):
    response = admin_client.post(url("delivery_cancel", deliveries["pending"].pk), follow=True)
    assert messages_of(response) == [f"Cancelled {deliveries['pending'].message_id}."]
    cancelled = Delivery.objects.get(pk=deliveries["pending"].pk)
    assert cancelled.status == DeliveryStatus.CANCELLED
    assert cancelled.next_attempt_at is None and cancelled.completed_at is not None
    assert cancelled.attempts == 1  # the log is kept


@pytest.mark.parametrize("name", ["in_flight", "succeeded"])
def test_a_delivery_that_is_not_pending_is_left_alone(admin_client, deliveries, name):
    response = admin_client.post(url("delivery_cancel", deliveries[name].pk), follow=True)
    assert "not pending, so it was not cancelled" in messages_of(response)[0]
    assert status_of(deliveries[name]) == name


def test_cancel_is_a_post(admin_client, deliveries):
    assert admin_client.get(url("delivery_cancel", deliveries["pending"].pk)).status_code == 405
    assert status_of(deliveries["pending"]) == DeliveryStatus.PENDING


def test_the_list_action_cancels_the_pending_ones_and_says_what_it_skipped(admin_client, deliveries):
    selected = [d.pk for d in deliveries.values()]
    response = admin_client.post(
        url("delivery_changelist"),
        {"action": "cancel_deliveries", "_selected_action": selected, "index": 0},
        follow=True,
    )
    assert messages_of(response) == [
        "Cancelled 1 pending delivery.",
        "2 deliveries were not pending (in flight or final) and were left as they are.",
    ]
    assert [status_of(deliveries[name]) for name in ("pending", "in_flight", "succeeded")] == [
        DeliveryStatus.CANCELLED,
        DeliveryStatus.IN_FLIGHT,
        DeliveryStatus.SUCCEEDED,
    ]


def test_cancelling_needs_the_change_delivery_permission(staff, deliveries):
    client = staff("view_delivery")
    html = client.get(url("delivery_change", deliveries["pending"].pk)).content.decode()
    assert url("delivery_cancel", deliveries["pending"].pk) not in html
    assert client.post(url("delivery_cancel", deliveries["pending"].pk)).status_code == 403
    client.post(
        url("delivery_changelist"),
        {"action": "cancel_deliveries", "_selected_action": [deliveries["pending"].pk], "index": 0},
    )
    assert status_of(deliveries["pending"]) == DeliveryStatus.PENDING


def test_a_cancelled_delivery_can_be_resent(admin_client, deliveries):
    admin_client.post(url("delivery_cancel", deliveries["pending"].pk))
    admin_client.post(url("delivery_resend", deliveries["pending"].pk))
    assert status_of(deliveries["pending"]) == DeliveryStatus.PENDING

"""The event catalog admin (django_webhooks/admin/event_types.py): sending an example to a subscription."""

from __future__ import annotations

import pytest

from django_webhooks.models import Event, EventType
from tests.admin import action, messages_of

pytestmark = pytest.mark.django_db


# --- event types ------------------------------------------------------------------------------


def test_send_example_action(admin_client, make_subscription, receiver):
    event_type = EventType.objects.create(name="order.created", example={"id": 7, "number": "A-7"})
    subscription = make_subscription(receiver.url("/hook"))
    form = action(admin_client, "send_example", [event_type], model="eventtype")
    assert subscription.url in form.content.decode()
    response = action(
        admin_client, "send_example", [event_type], model="eventtype", apply="Apply", subscription=subscription.pk
    )
    assert "Example of order.created sent to" in messages_of(response)[0] and "HTTP 200" in messages_of(response)[0]
    assert b'"number":"A-7"' in receiver.wait_for(1)[0].body.replace(b" ", b"")
    assert Event.objects.get().event_type == "order.created"


# --- permissions ------------------------------------------------------------------------------


def test_event_type_send_example_needs_change_permission(staff, make_subscription):
    client = staff("view_eventtype")
    event_type = EventType.objects.create(name="order.created", example={"id": 1})
    subscription = make_subscription()
    action(client, "send_example", [event_type], model="eventtype", apply="Apply", subscription=subscription.pk)
    assert not Event.objects.exists()

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from django_webhooks.catalog import validate_event_type_pattern
from django_webhooks.models import (
    Delivery,
    DeliveryStatus,
    Event,
    EventType,
    Subscription,
    validate_event_type_name,
)

pytestmark = pytest.mark.django_db


def test_event_type_name_validation():
    validate_event_type_name("order.created")
    validate_event_type_name("invoice_v2.paid")
    for bad in ["", "order..created", "order.", ".order", "order created", "order.*", "ordér", "order.created\n"]:
        with pytest.raises(ValidationError):
            validate_event_type_name(bad)


def test_event_type_pattern_validation():
    for good in ["*", "order.*", "order.created", "a.*.b"]:
        validate_event_type_pattern(good)
    for bad in ["", "order.**", "*.", "order*", "order. created", "order.*\n"]:
        with pytest.raises(ValidationError):
            validate_event_type_pattern(bad)


def test_delivery_message_id_is_stable_and_unique():
    event = Event.objects.create(event_type="order.created", payload={"id": 1})
    subs = [Subscription.objects.create(url=f"https://example.com/{i}", event_types=["*"]) for i in range(2)]
    first, second = (Delivery.objects.create(event=event, subscription=s) for s in subs)
    assert first.message_id.startswith("msg_") and "." not in first.message_id
    assert first.message_id != second.message_id
    first.refresh_from_db()
    assert first.status == DeliveryStatus.PENDING and first.attempts == 0


def test_one_delivery_per_event_and_subscription():
    event = Event.objects.create(event_type="order.created", payload={})
    sub = Subscription.objects.create(url="https://example.com/hook", event_types=["*"])
    Delivery.objects.create(event=event, subscription=sub)
    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(event=event, subscription=sub)


def test_idempotency_key_unique_per_owner():
    Event.objects.create(event_type="a.b", payload={}, owner_id="1", idempotency_key="k")
    Event.objects.create(event_type="a.b", payload={}, owner_id="2", idempotency_key="k")
    Event.objects.create(event_type="a.b", payload={}, owner_id=None, idempotency_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(event_type="a.b", payload={}, owner_id="1", idempotency_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        Event.objects.create(event_type="a.b", payload={}, owner_id=None, idempotency_key="k")


def test_str_of_every_model():
    et = EventType.objects.create(name="order.created")
    sub = Subscription.objects.create(url="https://example.com/hook", event_types=["order.*"])
    event = Event.objects.create(event_type="order.created", payload={})
    delivery = Delivery.objects.create(event=event, subscription=sub)
    assert str(et) == "order.created"
    assert "https://example.com/hook" in str(sub) and "order.*" in str(sub)
    assert str(event) == f"order.created #{event.pk}"
    assert delivery.message_id in str(delivery)

from __future__ import annotations

import json
import logging

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_webhooks.delivery.fanout import (
    build_body,
    fan_out,
    fan_out_all_pending,
    fan_out_pending,
    filters_match,
    matching_subscriptions,
)
from django_webhooks.models import Delivery, Event, EventType, Subscription

pytestmark = pytest.mark.django_db


def subscribe(*event_types, owner_id=None, filters=None, enabled=True, name="hook"):
    return Subscription.objects.create(
        url=f"https://example.com/{name}",
        event_types=list(event_types),
        owner_id=owner_id,
        filters=filters or {},
        enabled=enabled,
    )


def record(event_type="order.created", payload=None, owner_id=None, **fields):
    return Event.objects.create(event_type=event_type, payload=payload or {"id": 1}, owner_id=owner_id, **fields)


def other_than_inserts(captured):
    """Queries besides the delivery INSERTs and the body UPDATEs, whose count is the backend's batch size."""
    return [
        query
        for query in captured
        if not (
            query["sql"].startswith(("INSERT", "UPDATE"))
            and query["sql"]
            .split("(")[0]
            .split(" SET ")[0]
            .endswith(('"django_webhooks_delivery" ', '"django_webhooks_event"'))
        )
    ]


def test_filters_follow_dotted_paths():
    data = {"status": "paid", "customer": {"country": "NL"}, "lines": [{"sku": "X"}]}
    assert filters_match({}, data)
    assert filters_match({"status": "paid", "customer.country": "NL"}, data)
    assert filters_match({"lines.0.sku": "X"}, data)
    assert not filters_match({"customer.country": "DE"}, data)
    assert not filters_match({"missing.key": None}, data)
    assert not filters_match({"status.deep": "paid"}, data)


def test_owner_isolation():
    mine = subscribe("*", owner_id="1", name="mine")
    theirs = subscribe("*", owner_id="2", name="theirs")
    staff = subscribe("*", name="staff")
    assert {s.pk for s in matching_subscriptions(record(owner_id="1"))} == {mine.pk, staff.pk}
    assert {s.pk for s in matching_subscriptions(record(owner_id="2"))} == {theirs.pk, staff.pk}
    assert {s.pk for s in matching_subscriptions(record(owner_id=None))} == {staff.pk}


def test_types_enabled_and_filters():
    exact = subscribe("order.created", name="exact")
    pattern = subscribe("order.*", name="pattern")
    subscribe("invoice.*", name="other")
    subscribe("*", enabled=False, name="disabled")
    paid_only = subscribe("order.created", filters={"status": "paid"}, name="paid")
    matched = matching_subscriptions(record(payload={"id": 1, "status": "new"}))
    assert {s.pk for s in matched} == {exact.pk, pattern.pk}
    matched = matching_subscriptions(record(payload={"id": 1, "status": "paid"}))
    assert {s.pk for s in matched} == {exact.pk, pattern.pk, paid_only.pk}


def test_a_subscription_matching_twice_gets_one_delivery():
    subscription = subscribe("order.created", "order.*", "*")
    deliveries = fan_out(record())
    assert [d.subscription_id for d in deliveries] == [subscription.pk]


def test_envelope_is_built_once_and_stored():
    subscribe("*")
    event = record(payload={"id": 5, "total": "1.00"})
    fan_out(event)
    event.refresh_from_db()
    body = json.loads(event.body)
    assert body == {
        "type": "order.created",
        "timestamp": event.created_at.isoformat().replace("+00:00", "Z"),
        "data": {"id": 5, "total": "1.00"},
    }
    assert ", " not in event.body and ": " not in event.body
    assert event.fanned_out_at is not None
    Event.objects.filter(pk=event.pk).update(payload={"changed": True})
    event.refresh_from_db()
    assert build_body(event) == event.body  # the stored bytes win


def test_thin_types_send_id_type_and_url(settings):
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "THIN_PAYLOAD_URL": "https://shop.example/api/{type}/{id}?e={event_id}",
    }
    EventType.objects.create(name="order.created", thin=True)
    subscribe("*")
    event = record(payload={"id": 42, "secret": "not sent"})
    fan_out_pending()
    event.refresh_from_db()
    assert json.loads(event.body)["data"] == {
        "id": 42,
        "type": "order.created",
        "url": f"https://shop.example/api/order.created/42?e={event.pk}",
    }


def test_thin_from_settings(settings):
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {"order.created": {"thin": True}},
        "THIN_PAYLOAD_URL": "/orders/{id}",
    }
    event = record(payload={"id": 3, "total": "1.00"})
    assert json.loads(build_body(event))["data"] == {"id": 3, "type": "order.created", "url": "/orders/3"}


def test_fan_out_pending_is_idempotent():
    subscribe("*", name="a")
    subscribe("*", name="b")
    for _ in range(3):
        record()
    assert fan_out_pending() == 3
    assert Delivery.objects.count() == 6
    assert fan_out_pending() == 0
    Event.objects.update(fanned_out_at=None)  # as if a second worker raced the first
    assert fan_out_pending() == 3
    assert Delivery.objects.count() == 6


def test_events_that_failed_their_schema_are_never_sent(caplog):
    subscribe("*")
    event = record(schema_errors=["$.id: 'one' is not of type 'integer'"])
    with caplog.at_level(logging.WARNING, logger="django_webhooks.delivery.fanout"):
        assert fan_out_pending() == 1
    event.refresh_from_db()
    assert event.fanned_out_at is not None and Delivery.objects.count() == 0
    assert "failed the schema" in caplog.text


def test_fan_out_all_pending_goes_on_while_batches_are_full():
    for _ in range(5):
        record()
    assert fan_out_all_pending(limit=2) == 5
    assert Event.objects.filter(fanned_out_at__isnull=True).count() == 0
    assert fan_out_all_pending(limit=2) == 0


def test_a_batch_of_events_takes_few_queries(monkeypatch):
    from django_webhooks.delivery import handoff

    monkeypatch.setattr(handoff, "request_processing", lambda: None)
    for owner in range(20):
        subscribe("order.*", owner_id=str(owner), name=str(owner))
    subscribe("*", name="staff")
    Event.objects.bulk_create(
        Event(event_type="order.created", payload={"id": i}, owner_id=str(i % 20)) for i in range(1000)
    )
    with CaptureQueriesContext(connection) as captured:
        assert fan_out_pending(limit=1000) == 1000
    assert Delivery.objects.count() == 2000
    assert len(other_than_inserts(captured)) <= 12


def test_one_event_to_ten_thousand_subscriptions():
    Subscription.objects.bulk_create(
        Subscription(url=f"https://example.com/{i}", event_types=["order.*"], owner_id="7") for i in range(10_000)
    )
    event = record(owner_id="7")
    with CaptureQueriesContext(connection) as captured:
        assert fan_out_pending() == 1
    assert Delivery.objects.filter(event=event).count() == 10_000
    assert len(other_than_inserts(captured)) <= 8
    message_ids = set(Delivery.objects.values_list("message_id", flat=True))
    assert len(message_ids) == 10_000


@pytest.mark.django_db(transaction=True)
def test_two_workers_fanning_out_at_once_send_each_event_once(monkeypatch):
    import threading

    from django.db import connections

    from django_webhooks.delivery import handoff

    monkeypatch.setattr(handoff, "request_processing", lambda: None)
    subscribe("*", name="a")
    subscribe("order.*", name="b")
    Event.objects.bulk_create(Event(event_type="order.created", payload={"id": i}) for i in range(400))
    counts: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2, timeout=30)

    def worker():
        try:
            start.wait()
            while True:
                done = fan_out_pending(limit=50)
                counts.append(done)
                if not done:
                    break
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert sum(counts) == 400
    assert Delivery.objects.count() == 800
    assert not Event.objects.filter(fanned_out_at__isnull=True).exists()

"""Precompiled multi-row statements (django_webhooks/rows.py), on the database the suite runs on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_webhooks import rows
from django_webhooks.models import Delivery, Event

pytestmark = pytest.mark.django_db

COLUMNS = ("event_type", "payload", "created_at", "body")


def event_rows(count: int, body: str = "") -> list[tuple]:
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    return [(f"order.n{n}", f'{{"n": {n}}}', now, body) for n in range(count)]


def test_insert_rows_returns_the_ids_in_order_across_batches():
    pks = rows.insert_rows(Event, COLUMNS, event_rows(7), "default", batch_size=3)
    assert len(pks) == 7 and None not in pks
    stored = dict(Event.objects.values_list("pk", "event_type"))
    assert [stored[pk] for pk in pks] == [f"order.n{n}" for n in range(7)]
    assert Event.objects.get(pk=pks[3]).payload == {"n": 3}


def test_insert_rows_can_skip_rows_breaking_a_unique_constraint(make_subscription):
    subscription = make_subscription()
    [event_id] = rows.insert_rows(Event, COLUMNS, event_rows(1), "default")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    columns = ("event", "subscription", "message_id", "status", "attempts", "lease_token", "last_error")
    columns += ("payload_format", "body", "created_at", "next_attempt_at")
    first = [(event_id, subscription.pk, "msg_a", "pending", 0, "", "", "standard", "", now, now)]
    assert rows.insert_rows(Delivery, columns, first, "default", ignore_conflicts=True) == [None]
    again = [(event_id, subscription.pk, "msg_b", "pending", 0, "", "", "standard", "", now, now)]  # same pair
    assert rows.insert_rows(Delivery, columns, again, "default", ignore_conflicts=True) == [None]
    assert list(Delivery.objects.values_list("message_id", flat=True)) == ["msg_a"]


def test_update_rows_writes_each_row_its_own_values_and_counts_them():
    pks = rows.insert_rows(Event, COLUMNS, event_rows(5), "default")
    later = timezone.now() + timedelta(minutes=5)
    adapt = connection.ops.adapt_datetimefield_value
    changes = [(pk, f"body {pk}", adapt(later)) for pk in pks[:4]] + [(10**12, "nobody", adapt(later))]
    assert rows.update_rows(Event, ("body", "fanned_out_at"), changes, "default", batch_size=2) == 4
    for event in Event.objects.filter(pk__in=pks[:4]):
        assert event.body == f"body {event.pk}" and event.fanned_out_at == later
    untouched = Event.objects.get(pk=pks[4])
    assert untouched.body == "" and untouched.fanned_out_at is None


def test_statements_are_built_once_per_shape():
    rows.insert_statement.cache_clear()
    rows._insert_plan.cache_clear()
    rows.insert_rows(Event, COLUMNS, event_rows(2), "default")
    rows.insert_rows(Event, COLUMNS, event_rows(2), "default")
    assert rows.insert_statement.cache_info().misses == 1
    assert rows._insert_plan.cache_info().hits == 1


def test_many_rows_keep_every_kind_of_value_exactly():
    """Enough rows that PostgreSQL gets them as one JSON parameter (rows.MAX_CACHED_PARAMETERS)."""
    count = 40
    assert count * len(COLUMNS) > rows.MAX_CACHED_PARAMETERS
    now = timezone.now()
    adapt = connection.ops.adapt_datetimefield_value
    odd = ["plain", "quote ' and \" and \\", "ünïcödé ✓ 𝄞", "", "line\nbreak", "%s %(x)s ?"]
    values = [
        (f"type.{n}", f'{{"n": {n}, "s": "{n}"}}', adapt(now + timedelta(microseconds=n)), odd[n % len(odd)])
        for n in range(count)
    ]
    pks = rows.insert_rows(Event, COLUMNS, values, "default")
    stored = {event.pk: event for event in Event.objects.filter(pk__in=pks)}
    for n, pk in enumerate(pks):
        event = stored[pk]
        assert event.event_type == f"type.{n}" and event.payload == {"n": n, "s": str(n)}
        assert event.body == odd[n % len(odd)]
        assert event.created_at == now + timedelta(microseconds=n)
    changes = [(pk, odd[(n + 1) % len(odd)], None if n % 2 else adapt(now)) for n, pk in enumerate(pks)]
    assert rows.update_rows(Event, ("body", "fanned_out_at"), changes, "default") == count
    for n, event in enumerate(Event.objects.filter(pk__in=pks).order_by("pk")):
        assert event.body == odd[(n + 1) % len(odd)]
        assert event.fanned_out_at == (None if n % 2 else now)


def test_insert_instances_adapts_each_field_type_and_marks_the_instances_saved():
    later = timezone.now() + timedelta(minutes=3)
    events = [
        Event(event_type=f"order.i{n}", payload={"n": n, "text": "é\u2028"}, schema_errors=None, created_at=later)
        for n in range(3)
    ]
    columns = ("event_type", "payload", "schema_errors", "created_at", "body")
    pks = rows.insert_instances(Event, columns, events, "default")
    if connection.features.can_return_rows_from_bulk_insert:
        assert [event.pk for event in events] == pks and None not in pks
    assert all(not event._state.adding and event._state.db == "default" for event in events)
    stored = Event.objects.order_by("id")
    assert [(e.event_type, e.payload, e.schema_errors, e.created_at) for e in stored] == [
        (f"order.i{n}", {"n": n, "text": "é\u2028"}, None, later) for n in range(3)
    ]


def test_insert_instances_skipping_conflicts_leaves_the_instances_unsaved(make_subscription):
    subscription = make_subscription()
    [event_id] = rows.insert_rows(Event, COLUMNS, event_rows(1), "default")
    columns = ("event", "subscription", "message_id", "status", "attempts", "lease_token", "last_error")
    columns += ("payload_format", "body", "created_at", "next_attempt_at")
    now = timezone.now()
    first, again = (
        Delivery(
            event_id=event_id, subscription=subscription, message_id=message_id, created_at=now, next_attempt_at=now
        )
        for message_id in ("msg_a", "msg_b")
    )
    rows.insert_instances(Delivery, columns, [first], "default", ignore_conflicts=True)
    assert rows.insert_instances(Delivery, columns, [again], "default", ignore_conflicts=True) == [None]
    assert again._state.adding and again.pk is None
    assert list(Delivery.objects.values_list("message_id", flat=True)) == ["msg_a"]

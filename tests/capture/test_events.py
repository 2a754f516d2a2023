from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_webhooks import send_event, send_events_for_queryset
from django_webhooks.catalog import known_event_types
from django_webhooks.exceptions import (
    InvalidIdempotencyKey,
    InvalidOwner,
    InvalidPayload,
    PayloadTooLarge,
    UnknownEventType,
)
from django_webhooks.models import Event, EventType
from tests.models import Order

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"type": "integer"}, "total": {"type": "string"}},
}


@pytest.fixture
def webhook_settings(settings):
    def apply(**values):
        settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **values}

    return apply


def with_types(webhook_settings, settings, **types):
    webhook_settings(EVENT_TYPES={**settings.DJANGO_WEBHOOKS["EVENT_TYPES"], **types})


# --- send_event --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_send_event_returns_the_event(customer, enqueued):
    event = send_event("order.created", {"id": 1, "total": "2.00"}, owner=customer.user)
    assert isinstance(event, Event) and event.pk
    assert event.owner_id == str(customer.user_id)
    assert event.fanned_out_at is None and event.schema_errors is None
    assert Event.objects.get().payload == {"id": 1, "total": "2.00"}


@pytest.mark.django_db
def test_unknown_and_archived_types_are_rejected(enqueued):
    with pytest.raises(UnknownEventType, match="'invoice.paid'.*EVENT_TYPES"):
        send_event("invoice.paid", {})
    EventType.objects.create(name="invoice.paid")
    assert send_event("invoice.paid", {}).event_type == "invoice.paid"
    EventType.objects.filter(name="invoice.paid").update(archived=True)
    EventType.objects.get(name="invoice.paid").save()  # a save invalidates the catalog cache
    with pytest.raises(UnknownEventType, match="archived"):
        send_event("invoice.paid", {})
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_idempotency_key_returns_the_first_event(customer, enqueued):
    first = send_event("order.created", {"id": 1}, owner=customer.user, idempotency_key="import-1")
    again = send_event("order.created", {"id": 999}, owner=customer.user, idempotency_key="import-1")
    assert again.pk == first.pk and again.payload == {"id": 1}
    other_owner = send_event("order.created", {"id": 2}, idempotency_key="import-1")
    assert other_owner.pk != first.pk
    assert send_event("order.created", {"id": 3}, idempotency_key="import-1").pk == other_owner.pk
    assert Event.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_idempotency_race_is_settled_by_the_unique_constraint(customer, enqueued, monkeypatch):
    from django_webhooks.capture import events

    first = send_event("order.created", {"id": 1}, owner=customer.user, idempotency_key="race")
    calls = []
    real = events._existing

    def miss_first_lookup(using, owner_id, key):
        calls.append(key)
        return None if len(calls) == 1 else real(using, owner_id, key)

    monkeypatch.setattr(events, "_existing", miss_first_lookup)
    with transaction.atomic():
        again = send_event("order.created", {"id": 2}, owner=customer.user, idempotency_key="race")
        assert Event.objects.count() == 1  # the transaction is still usable
    assert again.pk == first.pk and len(calls) == 2


@pytest.mark.django_db
def test_schema_mismatch_raises_by_default(webhook_settings, settings, enqueued):
    with_types(webhook_settings, settings, **{"order.created": {"schema": ORDER_SCHEMA}})
    with pytest.raises(InvalidPayload) as caught:
        send_event("order.created", {"id": "one"})
    assert any("$.id" in error for error in caught.value.errors)
    assert any("'total' is a required property" in error for error in caught.value.errors)
    assert send_event("order.created", {"id": 1, "total": "1.00"}).schema_errors is None
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_schema_mismatch_is_recorded_and_reported(webhook_settings, settings, enqueued, caplog):
    with_types(webhook_settings, settings, **{"order.created": {"schema": ORDER_SCHEMA}})
    webhook_settings(SCHEMA_VALIDATION="record")
    with caplog.at_level(logging.WARNING, logger="django_webhooks.capture.events"):
        event = send_event("order.created", {"id": "one", "total": "1.00"})
    assert event.schema_errors and "$.id" in event.schema_errors[0]
    assert "will not be sent" in caplog.text


@pytest.mark.django_db
def test_schema_on_an_event_type_row(enqueued):
    EventType.objects.create(name="invoice.paid", schema={"type": "object", "required": ["amount"]})
    with pytest.raises(InvalidPayload, match="amount"):
        send_event("invoice.paid", {})


@pytest.mark.django_db
def test_payload_size_cap(webhook_settings, enqueued):
    webhook_settings(MAX_PAYLOAD_BYTES=100)
    send_event("order.created", {"note": "x" * 80})
    with pytest.raises(PayloadTooLarge, match="MAX_PAYLOAD_BYTES"):
        send_event("order.created", {"note": "é" * 60})  # 60 characters, 120 bytes
    assert Event.objects.count() == 1


@pytest.mark.django_db
def test_default_cap_is_256_kb(enqueued):
    with pytest.raises(PayloadTooLarge):
        send_event("order.created", {"note": "x" * (256 * 1024)})


@pytest.mark.django_db
def test_unserializable_data_is_a_clear_error(enqueued):
    with pytest.raises(InvalidPayload, match="not JSON-serializable"):
        send_event("order.created", {"when": threading.Lock()})


def _nested(depth):
    value = "x"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"total": float("nan")}, r"\$\.total: nan is not a JSON number"),
        ({"items": [{"price": float("inf")}]}, r"\$\.items\[0\]\.price: inf is not a JSON number"),
        ({"note": "\ud800"}, r"\$\.note: contains a lone UTF-16 surrogate"),
        ({"note": "a\x00b"}, r"\$\.note: contains a NUL character"),
        ({"a\x00": 1}, r"\$: a key contains a NUL character"),
        ({1: "one"}, r"\$: key 1 is not a string"),
        ({"deep": _nested(40)}, "nested deeper than 32 levels"),
    ],
)
@pytest.mark.django_db(transaction=True)
def test_data_json_cannot_carry_is_refused_before_anything_is_written(data, message, enqueued):
    with pytest.raises(InvalidPayload, match=message) as raised:
        send_event("order.created", data)
    assert raised.value.errors
    assert Event.objects.count() == 0
    assert enqueued == []


@pytest.mark.parametrize("key", ["", 5, "k" * 201, "a\x00b", "\udfff"])
@pytest.mark.django_db(transaction=True)
def test_idempotency_keys_the_column_cannot_hold_are_refused(key, enqueued):
    with pytest.raises(InvalidIdempotencyKey):
        send_event("order.created", {"id": 1}, idempotency_key=key)
    assert Event.objects.count() == 0
    assert send_event("order.created", {"id": 1}, idempotency_key="k" * 200).idempotency_key == "k" * 200


@pytest.mark.django_db(transaction=True)
def test_an_owner_of_another_model_is_refused_before_anything_is_written(customer, enqueued):
    with pytest.raises(InvalidOwner, match="testapp.Customer"):
        send_event("order.created", {"id": 1}, owner=customer)
    assert Event.objects.count() == 0


# --- bulk helper -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_events_for_a_queryset_in_one_insert(customer, enqueued, django_capture_on_commit_callbacks):
    Order.objects.bulk_create(Order(customer=customer, number=f"B-{i}", total="3.00") for i in range(50))
    assert Event.objects.count() == 0  # bulk_create fires no signals
    orders = Order.objects.filter(number__startswith="B-").select_related("customer")
    with django_capture_on_commit_callbacks(execute=True), CaptureQueriesContext(connection) as captured:
        created = send_events_for_queryset("order.updated", orders, owner="customer.user")
    inserts = [query for query in captured if query["sql"].startswith('INSERT INTO "django_webhooks_event"')]
    assert len(created) == 50 and len(inserts) == 1
    assert enqueued == [1]
    assert set(Event.objects.values_list("owner_id", flat=True)) == {str(customer.user_id)}
    assert Event.objects.filter(payload__number="B-7").exists()


@pytest.mark.django_db
def test_bulk_helper_payload_and_fixed_owner(customer, enqueued):
    Order.objects.create(customer=customer, number="C-1", total="3.00")
    Event.objects.all().delete()
    (event,) = send_events_for_queryset(
        "order.updated", Order.objects.all(), payload=lambda order: {"n": order.number}, owner=customer.user
    )
    assert event.payload == {"n": "C-1"} and event.owner_id == str(customer.user_id)
    assert send_events_for_queryset("order.updated", Order.objects.none()) == []
    with pytest.raises(UnknownEventType):
        send_events_for_queryset("nope.nope", Order.objects.all())


@pytest.mark.django_db
def test_a_type_added_elsewhere_is_found_despite_the_cache(enqueued):
    known_event_types()  # caches the catalog table
    EventType.objects.bulk_create([EventType(name="refund.issued")])  # no signals, as from another process
    assert send_event("refund.issued", {"id": 1}).event_type == "refund.issued"

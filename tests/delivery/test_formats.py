"""Payload formats and event type versions (django_webhooks/delivery/formats.py), sent for real.

Events are recorded with ``send_event``, fanned out and delivered to a loopback receiver through
the workers' entry points (``fan_out_all_pending``, ``deliver_due``); bodies are checked with the
``cloudevents`` SDK and signatures with ``standardwebhooks``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cloudevents.core.bindings.http import HTTPMessage, from_http
from cloudevents.core.formats.json import JSONFormat
from django.conf import settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks.capture.events import send_event
from django_webhooks.catalog import pin_event_versions
from django_webhooks.delivery import lanes
from django_webhooks.delivery.fanout import fan_out_all_pending
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, PayloadFormat
from django_webhooks.secret_store import current_secret
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

V1_SCHEMA = {"type": "object", "required": ["id", "total"], "properties": {"total": {"type": "string"}}}
V2_SCHEMA = {
    "type": "object",
    "required": ["id", "amount"],
    "properties": {"amount": {"type": "object", "required": ["value", "currency"]}},
}
V1_DATA = {"id": 7, "total": "25.00"}
V2_DATA = {"id": 7, "amount": {"value": "25.00", "currency": "EUR"}}


def order_created_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 2's data as version 1 (``amount`` was ``total``, in euros)."""
    return {"id": data["id"], "total": data.pop("amount")["value"]}


def broken_converter(data: dict[str, Any]) -> dict[str, Any]:
    raise KeyError("total")


def version_1() -> dict[str, Any]:
    return {"description": "An order was placed.", "schema": V1_SCHEMA, "example": V1_DATA}


def version_2(converter: str = "tests.delivery.test_formats.order_created_v1") -> dict[str, Any]:
    return {
        "description": "An order was placed.",
        "version": 2,
        "schema": V2_SCHEMA,
        "example": V2_DATA,
        "versions": {1: {"description": "total as a string", "schema": V1_SCHEMA, "converter": converter}},
    }


def use_catalog(settings_fixture, order_created: dict[str, Any]) -> None:
    settings_fixture.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {**settings.DJANGO_WEBHOOKS["EVENT_TYPES"], "order.created": order_created},
    }


def deliver_all() -> int:
    """Fan out what was recorded and run one delivery task, as a worker does."""
    fan_out_all_pending()
    return lanes.deliver_due(time_budget=1)


def by_path(requests) -> dict[str, Any]:
    return {request.path: request for request in requests}


def test_a_subscription_pinned_to_v1_keeps_receiving_v1_after_v2_becomes_current(settings, receiver, make_subscription):
    use_catalog(settings, version_1())
    pinned = make_subscription(
        url=receiver.url("/pinned"), event_types=["order.*"], event_versions=pin_event_versions(["order.*"])
    )
    assert pinned.event_versions["order.created"] == 1
    send_event("order.created", V1_DATA)
    assert deliver_all() == 1
    use_catalog(settings, version_2())  # the deploy that makes version 2 current
    newer = make_subscription(
        url=receiver.url("/newer"), event_types=["order.created"], event_versions=pin_event_versions(["*"])
    )
    unpinned = make_subscription(url=receiver.url("/unpinned"), event_types=["order.created"])
    event = send_event("order.created", V2_DATA)
    assert event.version == 2
    assert deliver_all() == 3

    first, *after = receiver.wait_for(4)
    assert json.loads(first.body)["data"] == V1_DATA
    received = by_path(after)
    assert json.loads(received["/pinned"].body)["data"] == V1_DATA
    assert json.loads(received["/newer"].body)["data"] == V2_DATA
    assert json.loads(received["/unpinned"].body)["data"] == V2_DATA
    event.refresh_from_db()
    assert received["/newer"].body == event.body.encode(), "the current version sends the event's own body"
    for subscription in (pinned, newer, unpinned):
        request = received[f"/{subscription.url.rsplit('/', 1)[1]}"]
        StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    stored = Delivery.objects.get(subscription=pinned, event=event)
    assert stored.event_version == 1 and stored.body.encode() == received["/pinned"].body


def test_cloudevents_structured_and_binary_parse_with_the_sdk(settings, receiver, make_subscription):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "CLOUDEVENTS_SOURCE": "https://shop.example.com/hooks"}
    structured = make_subscription(url=receiver.url("/structured"), payload_format=PayloadFormat.CLOUDEVENTS)
    binary = make_subscription(url=receiver.url("/binary"), payload_format=PayloadFormat.CLOUDEVENTS_BINARY)
    standard = make_subscription(url=receiver.url("/standard"))
    event = send_event("order.created", {"id": 3, "note": "é"})
    assert deliver_all() == 3

    received = by_path(receiver.wait_for(3))
    for path in ("/structured", "/binary"):
        request = received[path]
        cloud_event = from_http(HTTPMessage(headers=request.headers, body=request.body), JSONFormat())
        assert cloud_event.get_specversion() == "1.0"
        assert cloud_event.get_id() == str(event.pk)
        assert cloud_event.get_source() == "https://shop.example.com/hooks"
        assert cloud_event.get_type() == "order.created"
        assert cloud_event.get_time() == event.created_at
        assert cloud_event.get_datacontenttype() == "application/json"
        assert cloud_event.get_data() == {"id": 3, "note": "é"}
    assert received["/structured"].headers["content-type"] == "application/cloudevents+json"
    assert json.loads(received["/structured"].body)["datacontenttype"] == "application/json"
    assert received["/binary"].headers["content-type"] == "application/json"
    assert json.loads(received["/binary"].body) == {"id": 3, "note": "é"}
    assert received["/binary"].headers["ce-id"] == str(event.pk)
    assert not any(name.startswith("ce-") for name in received["/standard"].headers)
    assert received["/standard"].headers["content-type"] == "application/json"
    for subscription in (structured, binary, standard):
        request = received[subscription.url[subscription.url.rindex("/") :]]
        StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    attempt = DeliveryAttempt.objects.get(subscription=binary)
    assert attempt.request_headers["ce-type"] == "order.created", "the log shows the attributes sent"


def test_custom_headers_cannot_set_the_cloudevents_attributes(receiver, make_subscription):
    make_subscription(
        url=receiver.url(), payload_format=PayloadFormat.CLOUDEVENTS_BINARY, headers={"ce-id": "forged", "X-A": "1"}
    )
    event = send_event("order.created", {"id": 1})
    assert deliver_all() == 1
    [request] = receiver.wait_for(1)
    assert request.headers["ce-id"] == str(event.pk) and request.headers["x-a"] == "1"


@pytest.mark.parametrize("payload_format", list(PayloadFormat))
def test_retries_resend_identical_bytes(settings, receiver, make_subscription, payload_format):
    use_catalog(settings, version_2())
    receiver.script = [Reply(503), Reply(200)]
    subscription = make_subscription(
        url=receiver.url(), payload_format=payload_format, event_versions={"order.created": 1}
    )
    send_event("order.created", V2_DATA)
    assert deliver_all() == 1
    delivery = Delivery.objects.get(subscription=subscription)
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())
    assert lanes.deliver_due(time_budget=1) == 1
    first, retry = receiver.wait_for(2)
    assert retry.body == first.body
    assert retry.headers["webhook-id"] == first.headers["webhook-id"] == delivery.message_id
    assert {k: v for k, v in retry.headers.items() if k.startswith("ce-")} == {
        k: v for k, v in first.headers.items() if k.startswith("ce-")
    }
    body = json.loads(retry.body)
    data = body if payload_format == PayloadFormat.CLOUDEVENTS_BINARY else body["data"]
    assert data == V1_DATA
    StandardWebhook(current_secret(subscription)).verify(retry.body, retry.headers)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED


def test_a_converter_error_fails_that_delivery_only(settings, receiver, make_subscription, caplog):
    use_catalog(settings, version_2(converter="tests.delivery.test_formats.broken_converter"))
    pinned = make_subscription(url=receiver.url("/pinned"), event_versions={"order.created": 1})
    current = make_subscription(url=receiver.url("/current"), payload_format=PayloadFormat.CLOUDEVENTS)
    send_event("order.created", V2_DATA)
    assert deliver_all() == 1
    assert [request.path for request in receiver.requests] == ["/current"]
    failed = Delivery.objects.get(subscription=pinned)
    assert failed.status == DeliveryStatus.FAILED and failed.attempts == 0
    assert failed.next_attempt_at is None and failed.completed_at is not None
    assert "converter to order.created version 1 failed: KeyError" in failed.last_error
    assert "not sent to subscription" in caplog.text
    assert Delivery.objects.get(subscription=current).status == DeliveryStatus.SUCCEEDED


def test_a_resent_unrenderable_delivery_is_not_sent_in_another_version(settings, receiver, make_subscription):
    use_catalog(settings, version_2(converter="tests.delivery.test_formats.broken_converter"))
    pinned = make_subscription(url=receiver.url(), event_versions={"order.created": 1})
    send_event("order.created", V2_DATA)
    assert deliver_all() == 0
    Delivery.objects.filter(subscription=pinned).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now())
    assert lanes.deliver_due(time_budget=1) == 1
    assert receiver.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_class == ErrorClass.INTERNAL and "version 1" in attempt.error_message


def test_a_version_newer_than_the_event_is_refused(settings, receiver, make_subscription):
    use_catalog(settings, version_1())
    send_event("order.created", V1_DATA)  # recorded before the deploy of version 2
    use_catalog(settings, version_2())
    make_subscription(url=receiver.url(), event_versions={"order.created": 2})
    assert deliver_all() == 0
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.FAILED
    assert "recorded in version 1" in delivery.last_error
    assert receiver.requests == []


def test_thin_events_are_the_same_reference_in_every_version(settings, receiver, make_subscription):
    use_catalog(settings, {**version_2(), "thin": True})
    make_subscription(url=receiver.url("/v1"), event_versions={"order.created": 1})
    make_subscription(url=receiver.url("/v2"))
    send_event("order.created", V2_DATA)
    assert deliver_all() == 2
    received = by_path(receiver.wait_for(2))
    assert received["/v1"].body == received["/v2"].body
    assert json.loads(received["/v1"].body)["data"]["id"] == 7
    assert not Delivery.objects.exclude(body="").exists()


def test_bodies_are_built_once_per_format_and_version(settings, make_subscription, monkeypatch):
    use_catalog(settings, version_2())
    calls = []
    from tests.delivery import test_formats

    monkeypatch.setattr(test_formats, "order_created_v1", lambda data: calls.append(1) or {"id": 1, "total": "1"})
    for _ in range(3):
        make_subscription(event_versions={"order.created": 1})
        make_subscription(event_versions={"order.created": 1}, payload_format=PayloadFormat.CLOUDEVENTS)
    send_event("order.created", V2_DATA)
    fan_out_all_pending()
    assert len(calls) == 1, "one conversion for every subscription pinned to version 1"
    bodies = set(Delivery.objects.values_list("payload_format", "body"))
    assert len(bodies) == 2

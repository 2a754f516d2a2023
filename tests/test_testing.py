"""The helpers for users' own test suites (django_webhooks/testing.py), used as a user would."""

from __future__ import annotations

import pytest

from django_webhooks import receiving, send_event, testing
from django_webhooks.delivery import operations
from django_webhooks.models import Delivery
from django_webhooks.secret_store import signing_secrets
from tests.models import Order

pytestmark = pytest.mark.django_db  # a plain transactional test, as a user's suite has


def test_capture_records_what_would_be_sent_without_sending_it(customer, make_subscription):
    subscription = make_subscription("https://hooks.example.com/orders", owner_id=str(customer.user_id))
    with testing.capture_webhooks() as sent:
        order = Order.objects.create(customer=customer, number="A-1", total="5.00")
        assert testing.drain() == 1
    (webhook,) = sent
    assert webhook.url == "https://hooks.example.com/orders"
    assert webhook.event_type == "order.created"
    assert webhook.data["id"] == order.pk
    # Signed as a real delivery: the receiver-side helper accepts it.
    (secret,) = signing_secrets(subscription)
    receiving.verify(webhook.headers, webhook.body, secret)  # raises if the signature is wrong
    assert Delivery.objects.get().status == "succeeded"


def test_a_failing_status_is_retried_later_and_drain_does_not_wait_for_it(make_subscription):
    make_subscription("https://hooks.example.com/down")
    with testing.capture_webhooks(status=503) as sent:
        send_event("order.created", {"id": 1})
        assert testing.drain() == 1
    assert len(sent) == 1
    delivery = Delivery.objects.get()
    assert delivery.status == "pending" and delivery.attempts == 1


def test_drain_sends_real_http_to_a_local_receiver(make_subscription, receiver):
    make_subscription(receiver.url("/hook"))
    send_event("order.created", {"id": 7})
    assert testing.drain() == 1
    (request,) = receiver.requests
    assert b'"id":7' in request.body


def test_capture_records_a_test_event_too(make_subscription):
    subscription = make_subscription("https://hooks.example.com/orders")
    with testing.capture_webhooks(status=204) as sent:
        attempt = operations.send_test_event(subscription, data={"ping": True})
    (webhook,) = sent
    assert (webhook.event_type, webhook.data) == ("webhook.test", {"ping": True})
    assert webhook.webhook_id == attempt.delivery.message_id
    assert attempt.succeeded and attempt.response_status == 204

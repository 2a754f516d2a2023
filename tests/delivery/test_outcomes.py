"""Recording attempts (django_webhooks/delivery/outcomes.py): the precompiled INSERT, and what a
receiver sends back stored whatever it contains."""

from __future__ import annotations

import pytest

from django_webhooks.delivery import lanes
from django_webhooks.models import DeliveryAttempt, DeliveryStatus
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


def test_attempts_are_stored_with_their_ids_and_read_back_as_written(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url("/hook"))
    deliveries = [make_delivery(subscription, data={"n": n}) for n in range(3)]
    receiver.script = [Reply(200, body=b"fine", headers={"X-Answer": "yes"})] * 3
    assert lanes.deliver_due(time_budget=1) == 3
    stored = list(DeliveryAttempt.objects.order_by("id"))
    assert [attempt.delivery_id for attempt in stored] == [delivery.pk for delivery in deliveries]
    for attempt, delivery in zip(stored, deliveries, strict=True):
        assert attempt.subscription_id == subscription.pk
        assert (attempt.attempt_number, attempt.response_status, attempt.succeeded) == (1, 200, True)
        assert attempt.response_body == "fine"
        assert attempt.response_headers["X-Answer"] == "yes"
        assert attempt.request_headers["webhook-id"] == delivery.message_id
        assert attempt.url == receiver.url("/hook")
        assert attempt.created_at is not None and attempt.duration_ms is not None


def test_signals_carry_saved_attempts(receiver, make_subscription, make_delivery):
    from django_webhooks import signals

    subscription = make_subscription(url=receiver.url("/hook"))
    make_delivery(subscription)
    seen = []
    signals.delivery_succeeded.connect(lambda **kw: seen.append(kw["attempt"]), weak=False, dispatch_uid="outcomes")
    try:
        lanes.deliver_due(time_budget=1)
    finally:
        signals.delivery_succeeded.disconnect(dispatch_uid="outcomes")
    [attempt] = seen
    assert attempt.pk == DeliveryAttempt.objects.get().pk
    assert not attempt._state.adding


def test_nul_characters_in_an_answer_are_stored_replaced_not_refused(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url("/hook"))
    delivery = make_delivery(subscription)
    receiver.script = [Reply(500, body=b"bad\x00answer", headers={"X-Odd": "a\x01b"})]
    lanes.deliver_due(time_budget=1)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_status == 500
    assert attempt.response_body == "bad\ufffdanswer"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING  # a retry is scheduled: nothing was lost

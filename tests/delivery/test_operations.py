"""Manual operations: resend, recover, test event, enable and disable."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks import signals
from django_webhooks.delivery import operations
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Event
from django_webhooks.secret_store import current_secret
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(make_subscription, receiver):
    return make_subscription(url=receiver.url())


@pytest.mark.parametrize(
    "status", [DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED, DeliveryStatus.CANCELLED]
)
def test_resend_makes_a_final_delivery_pending_now_with_the_same_message_id(subscription, make_delivery, status):
    delivery = make_delivery(subscription, status=status, attempts=3, completed_at=timezone.now())
    message_id = delivery.message_id
    resent = operations.resend(delivery)
    assert resent.status == DeliveryStatus.PENDING and resent.message_id == message_id
    assert resent.next_attempt_at <= timezone.now() and resent.completed_at is None
    assert resent.attempts == 3


def test_resend_moves_a_waiting_retry_to_the_front(subscription, make_delivery):
    delivery = make_delivery(subscription, next_attempt_at=timezone.now() + timedelta(hours=5))
    assert operations.resend(delivery).next_attempt_at <= timezone.now()


def test_resend_leaves_a_delivery_in_flight_alone(subscription, make_delivery):
    lease = timezone.now() + timedelta(minutes=1)
    delivery = make_delivery(subscription, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease)
    resent = operations.resend(delivery)
    assert resent.status == DeliveryStatus.IN_FLIGHT and resent.lease_expires_at == lease


def test_recover_resends_failed_and_exhausted_since(subscription, make_delivery, make_subscription):
    since = timezone.now() - timedelta(hours=1)
    old = make_delivery(subscription, status=DeliveryStatus.FAILED, created_at=since - timedelta(minutes=1))
    failed = make_delivery(subscription, status=DeliveryStatus.FAILED)
    exhausted = make_delivery(subscription, status=DeliveryStatus.EXHAUSTED)
    succeeded = make_delivery(subscription, status=DeliveryStatus.SUCCEEDED)
    elsewhere = make_delivery(make_subscription(), status=DeliveryStatus.FAILED)
    assert operations.recover(subscription, since) == 2
    statuses = dict(Delivery.objects.values_list("pk", "status"))
    assert statuses[failed.pk] == statuses[exhausted.pk] == DeliveryStatus.PENDING
    assert statuses[old.pk] == statuses[elsewhere.pk] == DeliveryStatus.FAILED
    assert statuses[succeeded.pk] == DeliveryStatus.SUCCEEDED


def test_send_test_event_delivers_synchronously(subscription, receiver):
    attempt = operations.send_test_event(subscription, data={"hello": "world"})
    assert attempt.pk and attempt.succeeded and attempt.response_status == 200
    [request] = receiver.received()
    envelope = json.loads(request.body)
    assert envelope["type"] == "webhook.test" and envelope["data"] == {"hello": "world"}
    StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    event = Event.objects.get()
    assert event.event_type == "webhook.test" and event.fanned_out_at is not None
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.SUCCEEDED and request.headers["webhook-id"] == delivery.message_id


def test_send_test_event_uses_the_subscriptions_payload_format(subscription, receiver):
    subscription.payload_format = "cloudevents"
    subscription.save()
    attempt = operations.send_test_event(subscription, data={"hello": "world"})
    assert attempt.succeeded
    [request] = receiver.received()
    cloud_event = json.loads(request.body)
    assert (cloud_event["specversion"], cloud_event["type"], cloud_event["data"]) == (
        "1.0",
        "webhook.test",
        {"hello": "world"},
    )
    assert request.headers["content-type"].startswith("application/cloudevents+json")
    StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)


def test_send_test_event_returns_a_failed_attempt(subscription, receiver):
    receiver.script = [Reply(404, body=b"no such hook")]
    attempt = operations.send_test_event(subscription)
    assert not attempt.succeeded and attempt.response_status == 404
    assert attempt.response_body == "no such hook"


def test_describe_attempt_says_the_status_and_duration_and_why_it_failed(subscription, receiver):
    receiver.script = [Reply(200), Reply(404, body=b"no such hook")]
    delivered, refused = (operations.describe_attempt(operations.send_test_event(subscription)) for _ in range(2))
    assert re.fullmatch(r"HTTP 200 in \d+ ms", delivered)
    assert re.fullmatch(r"HTTP 404 in \d+ ms \(HTTP 404\.\)", refused)


def test_describe_attempt_without_a_response_names_the_error():
    timed_out = DeliveryAttempt(
        error_class=ErrorClass.TIMEOUT, duration_ms=10000, error_message="No complete response within 10 s." * 10
    )
    assert operations.describe_attempt(timed_out) == f"timeout in 10000 ms ({timed_out.error_message[:200]})"
    assert operations.describe_attempt(DeliveryAttempt(error_class=ErrorClass.CONNECTION)) == "connection error"


def test_send_test_event_goes_out_whatever_the_cap_circuit_or_state(subscription, receiver, make_delivery):
    busy = make_delivery(
        subscription,
        status=DeliveryStatus.IN_FLIGHT,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
        lease_token="busy",
    )
    subscription.enabled, subscription.max_in_flight = False, 1
    subscription.circuit_open_until = timezone.now() + timedelta(minutes=5)
    subscription.save()
    attempt = operations.send_test_event(subscription)
    assert attempt.succeeded and len(receiver.received()) == 1
    delivery = attempt.delivery
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_token, delivery.lease_expires_at) == (DeliveryStatus.SUCCEEDED, "", None)
    busy.refresh_from_db()
    assert (busy.status, busy.lease_token) == (DeliveryStatus.IN_FLIGHT, "busy")


def test_a_failed_test_event_is_retried_on_the_schedule(subscription, receiver):
    receiver.script = [Reply(503)]
    attempt = operations.send_test_event(subscription)
    assert (attempt.succeeded, attempt.response_status, attempt.attempt_number) == (False, 503, 1)
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.lease_token) == (DeliveryStatus.PENDING, 1, "")
    assert delivery.next_attempt_at > timezone.now()
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1


def test_a_test_event_goes_through_the_ssrf_guard(make_subscription):
    subscription = make_subscription(url="http://169.254.169.254/latest/meta-data")
    with override_settings(DJANGO_WEBHOOKS={"ALLOW_LOOPBACK": False, "REQUIRE_HTTPS": False}):
        attempt = operations.send_test_event(subscription)
    assert (attempt.error_class, attempt.response_status) == ("blocked_target", None)
    assert Delivery.objects.get().status == DeliveryStatus.FAILED


def test_disable_keeps_deliveries_and_signals_once(subscription, make_delivery):
    delivery = make_delivery(subscription)
    reasons = []
    signals.subscription_disabled.connect(lambda **kw: reasons.append(kw["reason"]), weak=False, dispatch_uid="t")
    try:
        operations.disable(subscription, "Customer asked.")
        operations.disable(subscription, "Again.")
    finally:
        signals.subscription_disabled.disconnect(dispatch_uid="t")
    subscription.refresh_from_db()
    assert not subscription.enabled and subscription.disabled_reason == "Customer asked."
    assert subscription.disabled_at is not None
    assert reasons == ["Customer asked."]
    assert Delivery.objects.get(pk=delivery.pk).status == DeliveryStatus.PENDING


def test_enable_clears_the_reason_and_closes_the_circuit(subscription):
    operations.disable(subscription, "Failing for 5 days.")
    subscription.consecutive_failures = 40
    subscription.circuit_open_until = timezone.now() + timedelta(hours=1)
    subscription.save()
    operations.enable(subscription)
    subscription.refresh_from_db()
    assert subscription.enabled and subscription.disabled_reason == "" and subscription.disabled_at is None
    assert subscription.consecutive_failures == 0 and subscription.circuit_open_until is None


def test_disable_emails_the_owner_when_notifications_are_on(make_subscription, django_capture_on_commit_callbacks):
    owner = get_user_model().objects.create(username="customer", email="customer@example.com")
    subscription = make_subscription("https://hooks.example.com/in", owner_id=str(owner.pk))
    with (
        override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "NOTIFY_OWNER_ON_DISABLE": True}),
        django_capture_on_commit_callbacks(execute=True),
    ):
        operations.disable(subscription, "Customer asked.")
    assert [message.to for message in mail.outbox] == [["customer@example.com"]]
    assert "Customer asked." in mail.outbox[0].body

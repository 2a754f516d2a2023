"""Manual operations the admin, the portal and the REST API offer: resend, cancel, recover, test event,
enable, disable, and how a test attempt went, in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from ..exceptions import EventVersionError
from ..metrics import recording as metrics
from ..models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription
from . import health
from .broker import enqueue_delivery
from .claiming import lease_lane
from .fanout import Rendering, build_body, new_delivery
from .formats import EventRenderer
from .lanes import deliver_lane

TEST_EVENT_TYPE = "webhook.test"


def resend(delivery: Delivery) -> Delivery:
    """Send ``delivery`` again soon, with the same ``webhook-id``.

    A final delivery (succeeded, failed, exhausted, cancelled) becomes ``pending`` again; a
    pending one is moved to the front. A delivery in flight is left to its worker.
    """
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).exclude(status=DeliveryStatus.IN_FLIGHT).update(
        status=DeliveryStatus.PENDING, next_attempt_at=now, completed_at=None, lease_expires_at=None
    )
    delivery.refresh_from_db()
    _enqueue_delivery()
    return delivery


def cancel(delivery: Delivery) -> bool:
    """Cancel ``delivery`` if it is ``pending``; return whether it was.

    A cancelled delivery is final: it is not attempted (again) unless someone resends it, and the
    next delivery of an ordered subscription may go out. One in flight is left to its worker, and
    a final one stays as it is (False): the change is one conditional ``UPDATE``, so a worker
    claiming the delivery at the same moment either gets it first or finds it cancelled.
    """
    cancelled = Delivery.objects.filter(pk=delivery.pk, status=DeliveryStatus.PENDING).update(
        status=DeliveryStatus.CANCELLED, next_attempt_at=None, completed_at=timezone.now(), lease_expires_at=None
    )
    delivery.refresh_from_db()
    if cancelled and delivery.subscription.ordered:
        _enqueue_delivery()  # the next delivery in order is due now
    return bool(cancelled)


def recover(subscription: Subscription, since: datetime) -> int:
    """Send again every failed or exhausted delivery of ``subscription`` created since ``since``."""
    count = Delivery.objects.filter(
        subscription=subscription,
        status__in=[DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED],
        created_at__gte=since,
    ).update(status=DeliveryStatus.PENDING, next_attempt_at=timezone.now(), completed_at=None)
    if count:
        _enqueue_delivery()
    return count


def send_test_event(
    subscription: Subscription, event_type: str = TEST_EVENT_TYPE, data: dict[str, Any] | None = None
) -> DeliveryAttempt:
    """Send one event to ``subscription`` now, in this process, and return the attempt.

    The event and its delivery are recorded like any other, so the attempt shows in the log.
    The delivery is leased to this call as a lane (whatever the subscription's cap, circuit or
    pace, and even while it is disabled) and sent the way the workers send every lane
    (:func:`~django_webhooks.delivery.lanes.deliver_lane`: signing, SSRF guard, retry policy,
    health): a failed test is retried on the schedule like any delivery.
    """
    now = timezone.now()
    payload = data if data is not None else {"subscription_id": subscription.pk, "message": "A test event."}
    with transaction.atomic():
        event = Event(event_type=event_type, payload=payload, owner_id=subscription.owner_id, created_at=now)
        event.body = build_body(event, thin=False)
        event.fanned_out_at = now
        event.save()
        # In the subscription's payload format and pinned version, like any of its deliveries.
        rendering = Rendering(subscription.payload_format, subscription.event_versions)
        delivery = new_delivery(event, subscription.pk, rendering, EventRenderer(event, False), now)
        if delivery.status == DeliveryStatus.FAILED:
            raise EventVersionError(delivery.last_error)
        delivery.save()
        # Its URL, headers and state as they are now, whatever the caller's copy says.
        lane = lease_lane(Subscription.objects.get(pk=subscription.pk), [delivery])
    attempts = deliver_lane(lane)
    if not attempts:
        raise RuntimeError(f"The test delivery {delivery.pk} was not sent (its lease ended first).")
    return attempts[0]


def describe_attempt(attempt: DeliveryAttempt) -> str:
    """How a test attempt went, for a message: status code or error, and duration."""
    if attempt.response_status:
        outcome = f"HTTP {attempt.response_status}"
    else:
        outcome = attempt.get_error_class_display() or gettext("no response")
    if attempt.duration_ms is not None:
        outcome += f" in {attempt.duration_ms} ms"
    if attempt.error_message and not attempt.succeeded:
        outcome += f" ({attempt.error_message[:200]})"
    return outcome


def enable(subscription: Subscription) -> Subscription:
    """Enable ``subscription`` again, forgetting its failure streak and closing its circuit.

    The incident, if any, ends without a "recovered" notice (its alert level is reset, so the
    next failure streak alerts again). Deliveries that waited while it was disabled go out as
    soon as a worker gets to them.
    """
    enabled = Subscription.objects.filter(pk=subscription.pk, enabled=False).update(
        enabled=True, disabled_reason="", disabled_at=None, updated_at=timezone.now()
    )
    subscription.enabled, subscription.disabled_reason, subscription.disabled_at = True, "", None
    health.reset_health(subscription)
    if enabled:
        transaction.on_commit(lambda: metrics.endpoint_state_changed("enabled", "manual"))
    if Delivery.objects.filter(subscription=subscription, status=DeliveryStatus.PENDING).exists():
        _enqueue_delivery()
    return subscription


def disable(subscription: Subscription, reason: str) -> Subscription:
    """Disable ``subscription`` with ``reason`` through :func:`health.disable_subscription`.

    Its deliveries are kept; they wait until it is enabled again. Disabling a subscription that
    is already disabled changes nothing and sends no signal.
    """
    health.disable_subscription(subscription, reason, cause="manual")
    subscription.enabled = False
    return subscription


def _enqueue_delivery() -> None:
    transaction.on_commit(lambda: enqueue_delivery(1))

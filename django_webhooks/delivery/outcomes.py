"""Recording what was sent: one attempt row each, the retry policy's decision, health, signals.

Attempts are stored in bulk and each delivery's next state is written under its lease token, so a
delivery another worker took over (its lease expired meanwhile) keeps the state its new holder
gives it. Stored request headers never keep signatures or credentials.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from django.db import router, transaction
from django.db.models import F
from django.utils import timezone

from .. import rows, signals
from ..conf import webhooks_settings
from ..metrics import recording as metrics
from ..models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription
from ..retry import RetryDecision, get_retry_policy
from . import attempt_stats, health
from .headers import redact_headers
from .transport import TransportResult

logger = logging.getLogger("django_webhooks.delivery")


@dataclass(frozen=True, slots=True)
class Sent:
    """One request a lane made for a delivery (built on a sender thread; recorded by :func:`record`)."""

    delivery: Delivery
    result: TransportResult
    #: When the request started.
    sent_at: datetime
    #: The headers it carried (as sent: redacted when stored).
    headers: dict[str, str]
    #: The URL it went to (the subscription's when the request started).
    url: str


def _text(value: str) -> str:
    """``value`` as the database can store it: no database stores a NUL in text or JSON."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _build_attempt(sent: Sent, decision: RetryDecision, max_body: int) -> DeliveryAttempt:
    delivery, result = sent.delivery, sent.result
    return DeliveryAttempt(
        delivery=delivery,
        subscription_id=delivery.subscription_id,
        attempt_number=delivery.attempts,
        created_at=sent.sent_at,
        url=sent.url,
        request_headers=redact_headers(sent.headers),
        response_status=result.status,
        response_headers={_text(name): _text(value) for name, value in (result.headers or {}).items()},
        response_body=_text((result.body or "")[:max_body]),
        duration_ms=result.duration_ms,
        error_class=result.error_class or "",
        error_message=_text((result.error_message or "")[:2000]),
        succeeded=decision.status == DeliveryStatus.SUCCEEDED,
    )


#: The columns :func:`_insert_attempts` writes.
_ATTEMPT_COLUMNS = (
    "delivery",
    "subscription",
    "attempt_number",
    "created_at",
    "url",
    "request_headers",
    "response_status",
    "response_headers",
    "response_body",
    "duration_ms",
    "error_class",
    "error_message",
    "succeeded",
)


def _insert_attempts(attempts: list[DeliveryAttempt]) -> None:
    """Store ``attempts`` with one precompiled multi-row INSERT (:mod:`django_webhooks.rows`) and
    give them their ids: a tenth of ``bulk_create``'s CPU for the same statement."""
    rows.insert_instances(DeliveryAttempt, _ATTEMPT_COLUMNS, attempts, router.db_for_write(DeliveryAttempt))


def record(sent: list[Sent]) -> list[DeliveryAttempt]:
    """Store the attempts (one INSERT), apply the decisions and update health once per subscription.

    Successes are written with one ``UPDATE`` per lease (and status code), guarded by the lease
    token so a delivery another worker took over keeps its new state; failures one by one.
    """
    if not sent:
        return []
    policy = get_retry_policy()
    max_body = int(webhooks_settings.MAX_RESPONSE_BYTES)
    attempts = []
    decisions = []
    for outcome in sent:
        outcome.delivery.attempts += 1
        decision = policy.decide(outcome.delivery, outcome.result, timezone.now())
        decisions.append(decision)
        attempts.append(_build_attempt(outcome, decision, max_body))
    _insert_attempts(attempts)
    now = timezone.now()
    outcomes: dict[int, list[bool]] = defaultdict(list)
    subscriptions: dict[int, Subscription] = {}
    successes: dict[tuple[str, int | None], list[tuple[Delivery, DeliveryAttempt]]] = defaultdict(list)
    failures = []
    for outcome, attempt, decision in zip(sent, attempts, decisions, strict=True):
        delivery = outcome.delivery
        outcomes[delivery.subscription_id].append(attempt.succeeded)
        subscriptions[delivery.subscription_id] = delivery.subscription
        if attempt.succeeded:
            successes[(delivery.lease_token, attempt.response_status)].append((delivery, attempt))
        else:
            failures.append((delivery, attempt, decision))
    with transaction.atomic():
        attempt_stats.add(attempts)
        held = _apply_successes(successes, now)
        applied = [
            (delivery, attempt, decision, _apply_failure(delivery, attempt, decision, now))
            for delivery, attempt, decision in failures
        ]
        for sid, subscription_outcomes in outcomes.items():
            health.record_outcomes(subscriptions[sid], subscription_outcomes, now)
    metrics.attempts_recorded(attempts)
    for group in successes.values():
        for delivery, attempt in group:
            _announce(delivery, attempt, None, delivery.pk in held)
    for delivery, attempt, decision, updated in applied:
        _announce(delivery, attempt, decision, updated)
    return attempts


def _apply_successes(
    successes: dict[tuple[str, int | None], list[tuple[Delivery, DeliveryAttempt]]], now: datetime
) -> set[int]:
    """Mark succeeded deliveries done, one ``UPDATE`` per lease; return the ids still held."""
    held: set[int] = set()
    for (token, status_code), group in successes.items():
        ids = [delivery.pk for delivery, _ in group]
        updated = Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.IN_FLIGHT, lease_token=token).update(
            status=DeliveryStatus.SUCCEEDED,
            attempts=F("attempts") + 1,
            next_attempt_at=None,
            last_status_code=status_code,
            last_error="",
            completed_at=now,
            lease_expires_at=None,
            lease_token="",
        )
        if updated == len(ids):
            held.update(ids)
        elif updated:
            held.update(
                Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SUCCEEDED, completed_at=now).values_list(
                    "pk", flat=True
                )
            )
        for delivery, _ in group:
            if delivery.pk in held:
                delivery.status = DeliveryStatus.SUCCEEDED
                delivery.next_attempt_at = None
                delivery.last_status_code = status_code
                delivery.last_error = ""
                delivery.completed_at = now
                delivery.lease_expires_at = None
                delivery.lease_token = ""
    return held


def _apply_failure(delivery: Delivery, attempt: DeliveryAttempt, decision: RetryDecision, now: datetime) -> bool:
    final = decision.status != DeliveryStatus.PENDING
    changes = {
        "status": decision.status,
        "attempts": delivery.attempts,
        "next_attempt_at": decision.next_attempt_at,
        "last_status_code": attempt.response_status,
        "last_error": decision.reason[:255],
        "completed_at": now if final else None,
        "lease_expires_at": None,
        "lease_token": "",
    }
    subscription = delivery.subscription
    updated = Delivery.objects.filter(
        pk=delivery.pk, status=DeliveryStatus.IN_FLIGHT, lease_token=delivery.lease_token
    ).update(**changes)
    if updated and decision.disable_subscription and subscription.enabled:
        health.disable_subscription(subscription, decision.reason, cause="gone")
    if updated:
        for name, value in changes.items():
            setattr(delivery, name, value)
    return bool(updated)


def _announce(delivery: Delivery, attempt: DeliveryAttempt, decision: RetryDecision | None, updated: bool) -> None:
    """Log the outcome and send its signal (only while the lease was still ours).

    ``decision`` is None for a success (the bulk update applied it).
    """
    will_retry = decision is not None and decision.will_retry
    outcome = "succeeded" if attempt.succeeded or decision is None else ("retry" if will_retry else decision.status)
    log = logger.info if attempt.succeeded else logger.warning
    next_attempt_at = decision.next_attempt_at if decision is not None else None
    if log is logger.warning or logger.isEnabledFor(logging.INFO):
        log(
            "webhook delivery %s: event=%s delivery=%s message=%s attempt=%s status=%s error=%s duration_ms=%s",
            outcome,
            delivery.event_id,
            delivery.pk,
            delivery.message_id,
            attempt.attempt_number,
            attempt.response_status,
            attempt.error_class or "-",
            attempt.duration_ms,
            extra={
                "webhook": {
                    "event_id": delivery.event_id,
                    "delivery_id": delivery.pk,
                    "subscription_id": delivery.subscription_id,
                    "message_id": delivery.message_id,
                    "attempt": attempt.attempt_number,
                    "outcome": outcome,
                    "status": attempt.response_status,
                    "error_class": attempt.error_class,
                    "duration_ms": attempt.duration_ms,
                    "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
                }
            },
        )
    if not updated:
        logger.warning(
            "Delivery %s lost its lease while sending; the attempt is recorded, its state left to the new holder.",
            delivery.pk,
        )
        return
    if attempt.succeeded:
        signals.delivery_succeeded.send(sender=Delivery, delivery=delivery, attempt=attempt)
    elif will_retry:
        signals.delivery_failed.send(
            sender=Delivery, delivery=delivery, attempt=attempt, next_attempt_at=next_attempt_at
        )
    else:
        signals.delivery_exhausted.send(sender=Delivery, delivery=delivery, attempt=attempt)

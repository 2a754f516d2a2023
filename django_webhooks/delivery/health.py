"""Endpoint health: the circuit breaker, auto-disable, and the figures the admin and API show.

The delivery engine calls :func:`record_outcomes` once per lane of attempts, possibly from many worker
threads and processes at once, so every change is one conditional ``UPDATE`` with ``F()``
expressions computed by the database, never a read-modify-write in Python.

Circuit breaker: when a subscription's consecutive failures reach ``CIRCUIT_BREAKER_THRESHOLD``
its circuit opens and the engine leaves its due deliveries waiting (their retry budget
untouched) until ``circuit_open_until``. After the cool-down the engine tries again; each further
batch of ``CIRCUIT_BREAKER_THRESHOLD`` failures reopens the circuit for twice the previous
cool-down (``CIRCUIT_BREAKER_COOLDOWN``, ``2x``, ``4x`` ... at most
``CIRCUIT_BREAKER_MAX_COOLDOWN``). One success closes it and resets the count.

Auto-disable: a subscription whose attempts have all failed since ``failing_since`` for longer
than ``AUTO_DISABLE_AFTER`` is disabled. Its deliveries stay ``pending``; they go out once the
subscription is enabled again.

Alerts (:mod:`~django_webhooks.delivery.alerts`): each failure counted may raise the
subscription's ``alert_level`` (failing, budget thresholds); disabling is the last step. A success
that ends a failure streak in which an alert was sent or the circuit opened (an *incident*) closes
it with its own conditional ``UPDATE``, whose count decides who announces the recovery and counts
the circuit as closed. The common success, on a healthy endpoint, stays one ``UPDATE`` that
usually writes nothing; when it does write, one ``SELECT`` checks for an incident to close.
Changes of state are counted for Prometheus (``metrics.endpoint_state_changed``) once the
transaction commits.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    F,
    FilteredRelation,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, Mod, RowNumber
from django.db.models.lookups import Exact
from django.utils import timezone

from ..conf import webhooks_settings
from ..metrics import recording as metrics
from ..models import DeliveryAttempt, Subscription
from ..stats import PercentileCont, percentile
from . import alerts
from .targets import loggable_url

logger = logging.getLogger("django_webhooks.delivery.health")

#: Period the health figures (attempt count, success rate, latency percentiles) cover.
HEALTH_WINDOW = timedelta(hours=24)

#: ``last_success_at`` is rewritten at most this often, so a busy healthy endpoint does not
#: turn every success into a write on its subscription row.
LAST_SUCCESS_RESOLUTION = timedelta(seconds=1)

#: Newest attempt durations per subscription read to compute latency percentiles in Python
#: (databases other than PostgreSQL).
LATENCY_SAMPLE_LIMIT = 1000

#: Fields of :class:`~django_webhooks.models.Subscription` this module maintains.
HEALTH_FIELDS = (
    "consecutive_failures",
    "circuit_open_until",
    "failing_since",
    "last_success_at",
    "last_failure_at",
)


# -- recording outcomes ----------------------------------------------------------------------


def record_outcome(subscription: Subscription, succeeded: bool, now: datetime | None = None) -> None:
    """Update ``subscription``'s health after one delivery attempt.

    A success closes the circuit and resets the failure streak in a single ``UPDATE`` that is
    skipped when there is nothing to change. A failure counts towards the circuit breaker and,
    once the streak is older than ``AUTO_DISABLE_AFTER``, disables the subscription; on the way
    it raises the alerts (:mod:`~django_webhooks.delivery.alerts`). The health fields of the
    ``subscription`` instance are brought up to date.
    """
    now = now or timezone.now()
    with transaction.atomic(savepoint=False):
        if succeeded:
            _record_success(subscription, now)
        else:
            _record_failure(subscription, now)


def record_outcomes(subscription: Subscription, outcomes: Sequence[bool], now: datetime | None = None) -> None:
    """Update ``subscription``'s health after several attempts, ``outcomes`` in the order sent.

    The same end state as calling :func:`record_outcome` for each, in one ``UPDATE`` when the
    last attempt succeeded (the usual case): the failures before the last success are wiped out
    by it anyway; only the failures after it count towards the circuit breaker.
    """
    outcomes = list(outcomes)
    if not outcomes:
        return
    now = now or timezone.now()
    trailing_failures = len(outcomes)
    # Inside the caller's transaction (the engine's) this adds no query; alone, it makes a
    # success's UPDATE and the incident it closes one unit.
    with transaction.atomic(savepoint=False):
        if True in outcomes:
            _record_success(subscription, now)
            trailing_failures = len(outcomes) - 1 - max(i for i, succeeded in enumerate(outcomes) if succeeded)
        for _ in range(trailing_failures):
            _record_failure(subscription, now)


#: A failure streak with something to announce when it ends: an alert was sent or the circuit opened.
IN_INCIDENT = Q(alert_level__gt=0) | Q(circuit_open_until__isnull=False)


def _record_success(subscription: Subscription, now: datetime) -> None:
    needs_write = (
        Q(consecutive_failures__gt=0)
        | Q(circuit_open_until__isnull=False)
        | Q(failing_since__isnull=False)
        | Q(alert_level__gt=0)
        | Q(last_success_at__isnull=True)
        | Q(last_success_at__lt=now - LAST_SUCCESS_RESOLUTION)
    )
    # A streak in an incident keeps its figures here: _close_incident reads them, then resets them.
    written = Subscription.objects.filter(needs_write, pk=subscription.pk).update(
        consecutive_failures=Case(When(IN_INCIDENT, then=F("consecutive_failures")), default=Value(0)),
        failing_since=Case(When(IN_INCIDENT, then=F("failing_since")), default=None),
        last_success_at=Case(When(last_success_at__gt=now, then=F("last_success_at")), default=Value(now)),
    )
    if written:
        _close_incident(subscription, now)
    subscription.consecutive_failures = 0
    subscription.circuit_open_until = None
    subscription.failing_since = None
    if written and (subscription.last_success_at is None or subscription.last_success_at < now):
        subscription.last_success_at = now


def _close_incident(subscription: Subscription, now: datetime) -> None:
    """End the incident a success just interrupted, if there is one: reset it, announce it once.

    The reset is conditional on the state read, so of several workers recording successes at
    once only the one whose ``UPDATE`` counted announces the recovery and counts the circuit as
    closed. A disabled subscription (a test event succeeded) keeps its alert level until a
    person enables it again: there is nothing to announce before then.
    """
    state = (
        Subscription.objects.filter(pk=subscription.pk)
        .values("alert_level", "circuit_open_until", "failing_since", "consecutive_failures", "enabled")
        .first()
    )
    if state is None or not (state["alert_level"] or state["circuit_open_until"]):
        return
    announce = bool(state["alert_level"]) and state["enabled"]
    closed = Subscription.objects.filter(
        pk=subscription.pk, alert_level=state["alert_level"], circuit_open_until=state["circuit_open_until"]
    ).update(
        consecutive_failures=0,
        failing_since=None,
        circuit_open_until=None,
        alert_level=alerts.LEVEL_NONE if state["enabled"] else F("alert_level"),
    )
    if not closed:
        return  # another worker closed it first
    if state["enabled"]:
        subscription.alert_level = alerts.LEVEL_NONE
    if state["circuit_open_until"] is not None:
        _count_state_change("circuit_closed")
    if announce:
        alerts.recovered(
            subscription,
            failing_since=state["failing_since"],
            consecutive_failures=state["consecutive_failures"],
            now=now,
        )


def _record_failure(subscription: Subscription, now: datetime) -> None:
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=F("consecutive_failures") + 1,
        last_failure_at=now,
        failing_since=Coalesce(F("failing_since"), Value(now)),
        circuit_open_until=_circuit_open_until_after_failure(now),
    )
    subscription.refresh_from_db(fields=[*HEALTH_FIELDS, "enabled", "alert_level"])
    threshold = _threshold()
    open_until = subscription.circuit_open_until
    if threshold and subscription.consecutive_failures % threshold == 0 and open_until and open_until > now:
        logger.warning(
            "Circuit of subscription %s (%s) opened until %s after %d consecutive failures.",
            subscription.pk,
            loggable_url(subscription.url),
            open_until.isoformat(),
            subscription.consecutive_failures,
        )
        _count_state_change("circuit_opened")
    period = alerts.failure_budget()
    if (
        subscription.enabled
        and period is not None
        and subscription.failing_since is not None
        and subscription.failing_since <= now - period
    ):
        reason = (
            f"Disabled automatically: every delivery failed for {alerts.describe_period(period)} "
            f"(since {subscription.failing_since:%Y-%m-%d %H:%M} UTC)."
        )
        disable_subscription(subscription, reason, now=now, cause="auto")
    else:
        alerts.escalate(subscription, now)


def _circuit_open_until_after_failure(now: datetime) -> Case | F:
    """SQL for ``circuit_open_until`` after one more failure, decided on the row's own count.

    The failure that brings the count to a multiple of the threshold opens the circuit; the
    ``k``-th opening lasts ``COOLDOWN * 2**(k-1)`` seconds, at most ``MAX_COOLDOWN``.
    """
    threshold = _threshold()
    if threshold is None:
        return F("circuit_open_until")
    base = max(float(webhooks_settings.CIRCUIT_BREAKER_COOLDOWN), 0.0)
    longest = max(float(webhooks_settings.CIRCUIT_BREAKER_MAX_COOLDOWN), base)
    whens = []
    opening = 1
    while base * 2 ** (opening - 1) < longest and opening < 64:
        cooldown = timedelta(seconds=base * 2 ** (opening - 1))
        whens.append(When(consecutive_failures=opening * threshold - 1, then=Value(now + cooldown)))
        opening += 1
    reaches_multiple: Exact[int] = Exact(Mod(F("consecutive_failures") + 1, Value(threshold)), 0)
    whens.append(
        When(
            Q(consecutive_failures__gte=opening * threshold - 1) & Q(reaches_multiple),
            then=Value(now + timedelta(seconds=longest)),
        )
    )
    return Case(*whens, default=F("circuit_open_until"))


def _threshold() -> int | None:
    value = webhooks_settings.CIRCUIT_BREAKER_THRESHOLD
    return int(value) if value and int(value) > 0 else None


def _count_state_change(change: str, reason: str = "") -> None:
    """Count ``change`` for Prometheus once the transaction commits (a rollback changed nothing)."""
    transaction.on_commit(lambda: metrics.endpoint_state_changed(change, reason))


# -- disabling -------------------------------------------------------------------------------


#: Why a subscription was disabled, as :func:`disable_subscription` is told and the metrics count it.
DISABLE_CAUSES = ("auto", "gone", "manual")


def disable_subscription(
    subscription: Subscription, reason: str, now: datetime | None = None, *, cause: str = "gone"
) -> bool:
    """Disable ``subscription`` with ``reason``; False if it was already disabled.

    The single place a subscription gets disabled, the last step of its alerts: ``cause`` is
    ``"auto"`` (failing for ``AUTO_DISABLE_AFTER``), ``"gone"`` (the receiver or the retry policy
    refused the endpoint for good: the engine's ``410 Gone`` path, the default) or ``"manual"``.
    Sends :data:`~django_webhooks.signals.subscription_disabled`, records the
    ``webhook.endpoint.disabled`` event and, with ``NOTIFY_OWNER_ON_DISABLE``, emails the owner
    once the transaction commits (:func:`~django_webhooks.delivery.alerts.disabled`). Pending
    deliveries are kept and go out after the subscription is enabled again.
    """
    now = now or timezone.now()
    reason = reason[: Subscription._meta.get_field("disabled_reason").max_length]
    changed = Subscription.objects.filter(pk=subscription.pk, enabled=True).update(
        enabled=False, disabled_reason=reason, disabled_at=now, updated_at=now, alert_level=alerts.LEVEL_DISABLED
    )
    if not changed:
        return False
    subscription.enabled = False
    subscription.disabled_reason = reason
    subscription.disabled_at = now
    subscription.alert_level = alerts.LEVEL_DISABLED
    logger.warning("Subscription %s (%s) disabled: %s", subscription.pk, loggable_url(subscription.url), reason)
    _count_state_change("disabled", cause)
    alerts.disabled(subscription, reason=reason, cause=cause, now=now)
    return True


def reset_health(subscription: Subscription) -> None:
    """Forget the failure streak, close the circuit and end the incident, e.g. when a person re-enables.

    Without it a subscription re-enabled after auto-disable would be disabled again by its
    next failure, its ``failing_since`` still being days old. The incident ends without a
    "recovered" notice: a person acted, the endpoint has not proved anything yet.
    """
    Subscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=0, circuit_open_until=None, failing_since=None, alert_level=alerts.LEVEL_NONE
    )
    subscription.consecutive_failures = 0
    subscription.circuit_open_until = None
    subscription.failing_since = None
    subscription.alert_level = alerts.LEVEL_NONE


# -- health figures --------------------------------------------------------------------------


def subscription_health(subscription: Subscription, now: datetime | None = None) -> dict[str, Any]:
    """Health figures of one subscription; see :func:`health_for`."""
    return health_for([subscription], now=now).get(subscription.pk) or _empty_health(subscription, now)


def health_for(subscriptions: Iterable[Subscription], now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """Health figures for a page of subscriptions, keyed by subscription id.

    Each value has ``last_success_at``, ``last_failure_at``, ``consecutive_failures``,
    ``circuit_state`` (``"closed"``/``"open"``), ``circuit_open_until``, ``attempts_24h``,
    ``success_rate_24h`` (None without attempts), ``p50_ms`` and ``p95_ms`` (latency of the
    attempts of the last 24 hours that have a duration, failures included), ``last_status``
    and ``last_error_class`` (of the newest attempt).

    The number of queries does not depend on how many subscriptions are asked for: one on
    PostgreSQL, where ``percentile_cont`` computes the percentiles; two elsewhere, the second
    reading at most :data:`LATENCY_SAMPLE_LIMIT` newest durations per subscription (a window
    function) and interpolating the same way ``percentile_cont`` does (both are
    :mod:`django_webhooks.stats`' percentiles).
    """
    now = now or timezone.now()
    since = now - HEALTH_WINDOW
    ids = [subscription.pk for subscription in subscriptions]
    if not ids:
        return {}
    on_postgres = connection.vendor == "postgresql"
    newest_attempt = DeliveryAttempt.objects.filter(subscription=OuterRef("pk")).order_by("-created_at", "-id")
    figures: dict[str, Any] = {
        "attempts_24h": Count("recent"),
        "successes_24h": Count("recent", filter=Q(recent__succeeded=True)),
        "last_status": Subquery(newest_attempt.values("response_status")[:1]),
        "last_error_class": Subquery(newest_attempt.values("error_class")[:1]),
    }
    if on_postgres:
        figures["p50_ms"] = PercentileCont("recent__duration_ms", 0.5)
        figures["p95_ms"] = PercentileCont("recent__duration_ms", 0.95)
    rows = (
        Subscription.objects.filter(pk__in=ids)
        .annotate(
            recent=FilteredRelation(
                "delivery_attempts",
                condition=Q(delivery_attempts__created_at__gte=since, delivery_attempts__created_at__lte=now),
            )
        )
        .values("pk", *HEALTH_FIELDS)
        .annotate(**figures)
        .order_by()
    )
    if not on_postgres:
        durations = _recent_durations(ids, since, now)
    result: dict[int, dict[str, Any]] = {}
    for row in rows:
        pk = row["pk"]
        if not on_postgres:
            samples = sorted(durations.get(pk, ()))
            row["p50_ms"] = percentile(samples, 0.5)
            row["p95_ms"] = percentile(samples, 0.95)
        result[pk] = _health_from_row(row, now)
    return result


def _recent_durations(ids: list[int], since: datetime, now: datetime) -> dict[int, list[int]]:
    newest_first = Window(
        RowNumber(), partition_by=F("subscription_id"), order_by=[F("created_at").desc(), F("id").desc()]
    )
    samples = (
        DeliveryAttempt.objects.filter(
            subscription_id__in=ids, created_at__gte=since, created_at__lte=now, duration_ms__isnull=False
        )
        .annotate(sample_number=newest_first)
        .filter(sample_number__lte=LATENCY_SAMPLE_LIMIT)
        .values_list("subscription_id", "duration_ms")
    )
    durations: dict[int, list[int]] = defaultdict(list)
    for subscription_id, duration_ms in samples:
        if duration_ms is not None:  # excluded by the query; the column is nullable
            durations[subscription_id].append(duration_ms)
    return durations


def _health_from_row(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    attempts = row["attempts_24h"]
    open_until = row["circuit_open_until"]
    return {
        "last_success_at": row["last_success_at"],
        "last_failure_at": row["last_failure_at"],
        "consecutive_failures": row["consecutive_failures"],
        "failing_since": row["failing_since"],
        "circuit_state": "open" if open_until is not None and open_until > now else "closed",
        "circuit_open_until": open_until,
        "attempts_24h": attempts,
        "success_rate_24h": (row["successes_24h"] / attempts) if attempts else None,
        "p50_ms": row["p50_ms"],
        "p95_ms": row["p95_ms"],
        "last_status": row["last_status"],
        "last_error_class": row["last_error_class"] or None,
    }


def _empty_health(subscription: Subscription, now: datetime | None) -> dict[str, Any]:
    row = {field: getattr(subscription, field) for field in HEALTH_FIELDS}
    row.update(attempts_24h=0, successes_24h=0, p50_ms=None, p95_ms=None, last_status=None, last_error_class=None)
    return _health_from_row(row, now or timezone.now())

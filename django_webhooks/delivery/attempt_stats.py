"""Hourly attempt statistics per subscription (:class:`~django_webhooks.models.AttemptStats`).

:func:`add` runs in the transaction that stores the attempts (``outcomes.record``), so the rows
always equal the attempts recorded, even when the worker dies right after. It is on the delivery
hot path: one ``UPDATE ... SET column = column + n`` per subscription and hour of the batch (a lane
is one subscription, so usually one statement), an ``INSERT`` only for the first attempts of an
hour. Groups are written in (subscription, hour) order, so two workers recording for the same
subscription lock its rows in the same order and wait for each other instead of deadlocking.

:func:`rebuild_subscription` recounts a subscription's hours from the attempts still stored (the
``webhooks_rebuild_stats`` command, for projects that had attempts before these statistics).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import NamedTuple

from django.db import IntegrityError, transaction
from django.db.models import F

from ..models import AttemptStats, DeliveryAttempt, ErrorClass
from ..stats import COUNTER_COLUMNS, FAILURE_COLUMNS, LATENCY_COLUMNS, bucket_start, latency_bucket

#: Error classes counted as ``connection`` failures: the receiver could not be reached or spoken to.
CONNECTION_ERRORS = frozenset({ErrorClass.CONNECTION, ErrorClass.DNS, ErrorClass.TLS})


class AttemptFacts(NamedTuple):
    """What the statistics read of one attempt (a ``DeliveryAttempt`` or a row of its values)."""

    subscription_id: int
    created_at: datetime
    succeeded: bool
    response_status: int | None
    error_class: str
    duration_ms: int | None


#: The ``DeliveryAttempt`` fields of :class:`AttemptFacts`, in order (for ``values_list``).
FACT_FIELDS = AttemptFacts._fields


def failure_class(status: int | None, error_class: str) -> str:
    """Which of :data:`~django_webhooks.stats.FAILURE_CLASSES` a failed attempt counts in.

    ``timeout``; ``connection`` (connection, DNS, TLS); ``4xx`` and ``5xx`` for an HTTP error
    status (also from a transport that left ``error_class`` empty); ``other`` for the rest: a
    redirect, a blocked or invalid target, an internal error, an odd status.
    """
    if error_class == ErrorClass.TIMEOUT:
        return "timeout"
    if error_class in CONNECTION_ERRORS:
        return "connection"
    if error_class in (ErrorClass.NONE, ErrorClass.HTTP_STATUS) and status is not None:
        if 400 <= status < 500:
            return "4xx"
        if 500 <= status < 600:
            return "5xx"
    return "other"


def tally(counts: Counter[str], attempt: AttemptFacts) -> None:
    """Add one attempt to ``counts`` (``AttemptStats`` column -> increment)."""
    counts["attempts"] += 1
    if attempt.succeeded:
        counts["successes"] += 1
    else:
        counts[FAILURE_COLUMNS[failure_class(attempt.response_status, attempt.error_class)]] += 1
    if attempt.duration_ms is not None:
        counts["duration_ms_total"] += attempt.duration_ms
        counts[LATENCY_COLUMNS[latency_bucket(attempt.duration_ms)]] += 1


def count_by_hour(attempts: Iterable[AttemptFacts]) -> dict[tuple[int, datetime], Counter[str]]:
    """``attempts`` counted per (subscription id, UTC hour), in that order."""
    groups: dict[tuple[int, datetime], Counter[str]] = {}
    for attempt in attempts:
        key = (attempt.subscription_id, bucket_start(attempt.created_at))
        counts = groups.get(key)
        if counts is None:
            counts = groups[key] = Counter()
        tally(counts, attempt)
    return dict(sorted(groups.items()))


def _facts(attempt: DeliveryAttempt) -> AttemptFacts:
    return AttemptFacts(
        attempt.subscription_id,
        attempt.created_at,
        attempt.succeeded,
        attempt.response_status,
        attempt.error_class,
        attempt.duration_ms,
    )


def add(attempts: list[DeliveryAttempt]) -> None:
    """Count ``attempts`` into their subscription's hour (called in the transaction that stores them)."""
    for (subscription_id, hour), counts in count_by_hour(_facts(attempt) for attempt in attempts).items():
        _increment(subscription_id, hour, counts)


def _increment(subscription_id: int, hour: datetime, counts: Counter[str]) -> None:
    row = AttemptStats.objects.filter(subscription_id=subscription_id, hour=hour)
    changes = {column: F(column) + n for column, n in counts.items() if n}
    if row.update(**changes):
        return
    try:
        # A savepoint: a concurrent worker may insert the same hour first; the UPDATE then finds it.
        with transaction.atomic():
            AttemptStats.objects.create(subscription_id=subscription_id, hour=hour, **counts)
    except IntegrityError:
        row.update(**changes)


class Rebuilt(NamedTuple):
    """What :func:`rebuild_subscription` did: attempts read, hours written, hours left as they were."""

    attempts: int
    written: int
    kept: int


def rebuild_subscription(subscription_id: int, until: datetime, since: datetime | None = None) -> Rebuilt:
    """Recount a subscription's hours before ``until`` (an hour start) from its stored attempts.

    An hour's row is replaced by the count of its stored attempts unless it already counts more
    attempts: attempts are only ever deleted (pruning) and each recorded one is counted once, so
    the larger count is the complete one, whether the row predates the pruning of its hour's
    older attempts or the attempts predate the row (attempts recorded before these statistics
    existed). Running it twice changes nothing.
    """
    attempts = DeliveryAttempt.objects.filter(subscription_id=subscription_id, created_at__lt=until)
    if since is not None:
        attempts = attempts.filter(created_at__gte=since)
    groups = count_by_hour(
        AttemptFacts(*values) for values in attempts.order_by().values_list(*FACT_FIELDS).iterator(chunk_size=5000)
    )
    read = sum(counts["attempts"] for counts in groups.values())
    if not groups:
        return Rebuilt(0, 0, 0)
    hours = [hour for _sid, hour in groups]
    written = kept = 0
    with transaction.atomic():
        existing = {
            row.hour: row
            for row in AttemptStats.objects.select_for_update().filter(
                subscription_id=subscription_id, hour__gte=hours[0], hour__lte=hours[-1]
            )
        }
        new_rows, replaced = [], []
        for (_sid, hour), counts in groups.items():
            values = {column: counts[column] for column in COUNTER_COLUMNS}
            row = existing.get(hour)
            if row is None:
                new_rows.append(AttemptStats(subscription_id=subscription_id, hour=hour, **values))
            elif row.attempts >= counts["attempts"]:
                kept += 1
                continue
            else:
                for column, value in values.items():
                    setattr(row, column, value)
                replaced.append(row)
            written += 1
        AttemptStats.objects.bulk_create(new_rows, batch_size=500)
        AttemptStats.objects.bulk_update(replaced, COUNTER_COLUMNS, batch_size=200)
    return Rebuilt(read, written, kept)

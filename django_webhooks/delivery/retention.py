"""Retention: delete old delivery attempts and finished events in small batches.

What goes after ``RETENTION_DAYS``:

- ``DeliveryAttempt`` rows created before the cutoff (the HTTP log);
- ``Event`` rows created before the cutoff that were fanned out and whose deliveries are all in
  a final state (succeeded, failed, exhausted, cancelled), with those deliveries.

- ``AttemptStats`` rows (the hourly per-subscription statistics) of hours before
  :data:`STATS_RETENTION_DAYS` days ago, or ``RETENTION_DAYS`` if that is longer: the charts and
  the stats API outlive the attempts they count, by design, but not forever.

An event that still has a pending or in-flight delivery, or that was never fanned out, is kept
however old it is, and so are its deliveries. Each batch is one short transaction over an id
range, so pruning millions of rows never holds long locks or builds one giant DELETE.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import models, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..conf import webhooks_settings
from ..models import FINAL_STATUSES, AttemptStats, Delivery, DeliveryAttempt, Event

#: ``progress(kind, deleted_in_batch, deleted_so_far)``; kind is "events", "attempts" or "stats".
ProgressCallback = Callable[[str, int, int], None]


def prunable_events(cutoff: datetime) -> models.QuerySet[Event]:
    """Events created before ``cutoff``, fanned out, with no delivery still to be sent."""
    unfinished = Delivery.objects.filter(event=OuterRef("pk")).exclude(status__in=FINAL_STATUSES)
    return Event.objects.filter(created_at__lt=cutoff, fanned_out_at__isnull=False).exclude(Exists(unfinished))


#: Days of hourly statistics kept (at least ``RETENTION_DAYS``): a year and a month, so that a
#: month can be compared with the same month a year before. About 24 small rows a day per
#: subscription that had attempts, so a year of 1,000 busy subscriptions is under 9 million rows.
STATS_RETENTION_DAYS = 400


def prunable_stats(cutoff: datetime) -> models.QuerySet[AttemptStats]:
    """Hourly statistics of hours that began before ``cutoff``."""
    return AttemptStats.objects.filter(hour__lt=cutoff)


def prunable_attempts(cutoff: datetime) -> models.QuerySet[DeliveryAttempt]:
    """Delivery attempts recorded before ``cutoff``."""
    return DeliveryAttempt.objects.filter(created_at__lt=cutoff)


def _in_batches(
    queryset: models.QuerySet,
    batch_size: int,
    delete: Callable[[models.QuerySet], dict[str, int]],
    on_batch: Callable[[dict[str, int]], None],
) -> None:
    """Walk ``queryset`` by ascending id; call ``delete`` on each id range of ``batch_size`` rows."""
    last_id = 0
    while True:
        ids = list(queryset.filter(pk__gt=last_id).order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not ids:
            return
        with transaction.atomic():
            counts = delete(queryset.filter(pk__gte=ids[0], pk__lte=ids[-1]))
        on_batch(counts)
        last_id = ids[-1]
        if len(ids) < batch_size:
            return


def _deleted(queryset: models.QuerySet) -> dict[str, int]:
    _, per_model = queryset.delete()
    return {
        "events": per_model.get(Event._meta.label, 0),
        "deliveries": per_model.get(Delivery._meta.label, 0),
        "attempts": per_model.get(DeliveryAttempt._meta.label, 0),
        "stats": per_model.get(AttemptStats._meta.label, 0),
    }


def _counted(queryset: models.QuerySet) -> dict[str, int]:
    """What deleting ``queryset`` would remove (for dry runs)."""
    if queryset.model is Event:
        ids = queryset.values("pk")
        return {
            "events": queryset.count(),
            "deliveries": Delivery.objects.filter(event__in=ids).count(),
            "attempts": DeliveryAttempt.objects.filter(delivery__event__in=ids).count(),
            "stats": 0,
        }
    if queryset.model is AttemptStats:
        return {"events": 0, "deliveries": 0, "attempts": 0, "stats": queryset.count()}
    return {"events": 0, "deliveries": 0, "attempts": queryset.count(), "stats": 0}


def prune(
    older_than_days: int | None = None,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> dict[str, int]:
    """Delete what is older than ``older_than_days`` (default ``RETENTION_DAYS``).

    Returns ``{"events": n, "deliveries": n, "attempts": n, "stats": n, "batches": n}``, the rows deleted
    (or, with ``dry_run``, the rows that would be). ``progress`` is called after every batch.
    """
    days = webhooks_settings.RETENTION_DAYS if older_than_days is None else older_than_days
    size = webhooks_settings.PRUNE_BATCH_SIZE if batch_size is None else batch_size
    if days < 0:
        raise ValueError("older_than_days may not be negative.")
    if size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    totals = {"events": 0, "deliveries": 0, "attempts": 0, "stats": 0, "batches": 0}
    delete = _counted if dry_run else _deleted

    def on_batch(kind: str) -> Callable[[dict[str, int]], None]:
        def record(counts: dict[str, int]) -> None:
            for key, value in counts.items():
                totals[key] += value
            totals["batches"] += 1
            if progress is not None:
                progress(kind, counts[kind], totals[kind])

        return record

    events = prunable_events(cutoff)
    attempts = prunable_attempts(cutoff)
    if dry_run:
        attempts = attempts.exclude(delivery__event__in=events.values("pk"))
    _in_batches(events, size, delete, on_batch("events"))
    _in_batches(attempts, size, delete, on_batch("attempts"))
    stats_cutoff = now - timedelta(days=max(STATS_RETENTION_DAYS, days))
    _in_batches(prunable_stats(stats_cutoff), size, delete, on_batch("stats"))
    return totals

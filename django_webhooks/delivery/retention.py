"""Retention: delete old delivery attempts and finished events in small batches.

What goes after ``RETENTION_DAYS``:

- ``DeliveryAttempt`` rows created before the cutoff (the HTTP log);
- ``Event`` rows created before the cutoff that were fanned out and whose deliveries are all in
  a final state (succeeded, failed, exhausted, cancelled), with those deliveries and the
  attempts they still have;
- ``AttemptStats`` rows (the hourly per-subscription statistics) of hours before
  :data:`STATS_RETENTION_DAYS` days ago, or ``RETENTION_DAYS`` if that is longer: the charts and
  the stats API outlive the attempts they count, by design, but not forever.

An event that still has a pending or in-flight delivery, or that was never fanned out, is kept
however old it is, and so are its deliveries.

Each table is walked along its time index (``created_at``, or ``hour`` for the statistics) in
windows of about ``PRUNE_BATCH_SIZE`` rows: the window's upper bound is the n-th timestamp after
the previous one, read off the index, and each window is deleted by that range in one short
transaction. No ids travel to Python and back, every batch starts where the previous one ended
(never re-reading rows deleted before), and the cost of a batch does not grow with the table.
Rows sharing the bound's timestamp go in the same window, so a window can hold a few more rows.

SQLite has one writer at a time, and its busy handler retries a waiting writer only now and
then: a prune that committed batch after batch would leave the workers' writes waiting for
seconds (measured: inserts at a third of their rate, 5 s stalls). On SQLite each batch is
followed by a pause as long as the batch took, so that the workers have the lock half the time.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from django.db import connections, models, transaction
from django.db.models import Exists, OuterRef, Q
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from ..conf import webhooks_settings
from ..models import FINAL_STATUSES, AttemptStats, Delivery, DeliveryAttempt, DeliveryStatus, Event

#: ``progress(kind, deleted_in_batch, deleted_so_far)``; kind is "events", "attempts" or "stats".
ProgressCallback = Callable[[str, int, int], None]

#: Days of hourly statistics kept (at least ``RETENTION_DAYS``): a year and a month, so that a
#: month can be compared with the same month a year before. About 24 small rows a day per
#: subscription that had attempts, so a year of 1,000 busy subscriptions is under 9 million rows.
STATS_RETENTION_DAYS = 400

KINDS = ("events", "deliveries", "attempts", "stats")

#: The statuses that are not final, listed rather than written ``NOT IN`` the final ones, so that
#: the check for an unfinished delivery can be answered from an index.
UNFINISHED_STATUSES = tuple(status for status in DeliveryStatus if status not in FINAL_STATUSES)


def prunable_events(cutoff: datetime) -> models.QuerySet[Event]:
    """Events created before ``cutoff``, fanned out, with no delivery still to be sent."""
    unfinished = Delivery.objects.filter(event=OuterRef("pk"), status__in=UNFINISHED_STATUSES)
    return Event.objects.filter(created_at__lt=cutoff, fanned_out_at__isnull=False).exclude(Exists(unfinished))


def prunable_stats(cutoff: datetime) -> models.QuerySet[AttemptStats]:
    """Hourly statistics of hours that began before ``cutoff``."""
    return AttemptStats.objects.filter(hour__lt=cutoff)


def prunable_attempts(cutoff: datetime) -> models.QuerySet[DeliveryAttempt]:
    """Delivery attempts recorded before ``cutoff``."""
    return DeliveryAttempt.objects.filter(created_at__lt=cutoff)


def windows(queryset: models.QuerySet, field: str, size: int) -> Iterator[Q]:
    """Successive ranges of ``field`` covering ``queryset`` in ascending order, ~``size`` rows each.

    Each bound is found with one ``ORDER BY field LIMIT 1 OFFSET size - 1`` on the index of
    ``field``, starting after the previous bound, and is computed only when the next window is
    asked for: a caller that deletes a window before asking for the next never scans it again.
    The last window is open-ended (what remains of ``queryset``), and may be empty.
    """
    lower = None
    while True:
        after = Q() if lower is None else Q(**{f"{field}__gt": lower})
        bounds = queryset.filter(after).order_by(field).values_list(field, flat=True)[size - 1 : size]
        upper = next(iter(bounds), None)
        if upper is None:
            yield after
            return
        yield after & Q(**{f"{field}__lte": upper})
        lower = upper


def _delete(queryset: models.QuerySet, children: tuple[type[models.Model], ...] = ()) -> int:
    """Delete ``queryset`` in one statement, or through Django's collector when others may care.

    ``children`` are the models pointing at this one whose rows the caller deleted first. With
    no other model pointing here and no delete signal connected, the rows are deleted by one
    ``DELETE ... WHERE`` without loading them (what ``QuerySet.delete()`` does by itself for a
    model nothing points at); otherwise ``delete()`` collects them so that project models with
    a foreign key to ours, and signal receivers, see the deletion as usual.
    """
    model = queryset.model
    pointing = {relation.related_model for relation in model._meta.related_objects}
    if pointing <= set(children) and not (pre_delete.has_listeners(model) or post_delete.has_listeners(model)):
        return queryset._raw_delete(queryset.db)
    return queryset.delete()[1].get(model._meta.label, 0)


class _Pruner:
    """One run of :func:`prune`: the cutoffs, the totals and the progress reports."""

    def __init__(
        self, cutoff: datetime, stats_cutoff: datetime, size: int, dry_run: bool, progress: ProgressCallback | None
    ) -> None:
        self.cutoff = cutoff
        self.stats_cutoff = stats_cutoff
        self.size = size
        self.dry_run = dry_run
        self.progress = progress
        self.totals = dict.fromkeys((*KINDS, "batches"), 0)
        self.share_the_lock = not dry_run and connections[DeliveryAttempt.objects.db].vendor == "sqlite"

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """One batch's transaction (then, on SQLite, as long a pause: see the module docstring)."""
        started = time.monotonic()
        with transaction.atomic():
            yield
        if self.share_the_lock:
            time.sleep(time.monotonic() - started)

    def record(self, kind: str, counts: dict[str, int]) -> None:
        if not any(counts.values()):
            return
        for key, value in counts.items():
            self.totals[key] += value
        self.totals["batches"] += 1
        if self.progress is not None:
            self.progress(kind, counts.get(kind, 0), self.totals[kind])

    def attempts(self) -> None:
        old = prunable_attempts(self.cutoff)
        for window in windows(old, "created_at", self.size):
            batch = old.filter(window)
            with self.batch():
                count = batch.count() if self.dry_run else batch.delete()[0]
            self.record("attempts", {"attempts": count})

    def events(self) -> None:
        """Old events (all of them, for the windows), and in each window the prunable ones.

        A delivery resent while its event is being pruned is not lost: deliveries are deleted only
        in a final state and events only once none is left, so the event and the resent delivery
        both stay (with whichever of its newer attempts were already gone).
        """
        for window in windows(Event.objects.filter(created_at__lt=self.cutoff), "created_at", self.size):
            prunable = prunable_events(self.cutoff).filter(window)
            finished = Delivery.objects.filter(event__in=prunable.values("pk"), status__in=FINAL_STATUSES)
            attempts = DeliveryAttempt.objects.filter(delivery__in=finished.values("pk"))
            with self.batch():
                if self.dry_run:
                    # What the attempts pass before this one has not already counted.
                    attempts = attempts.filter(created_at__gte=self.cutoff)
                    counts = {"attempts": attempts.count(), "deliveries": finished.count(), "events": prunable.count()}
                else:
                    counts = {"attempts": attempts.delete()[0]}
                    counts["deliveries"] = _delete(finished, children=(DeliveryAttempt,))
                    emptied = Event.objects.filter(window, created_at__lt=self.cutoff, fanned_out_at__isnull=False)
                    emptied = emptied.exclude(Exists(Delivery.objects.filter(event=OuterRef("pk"))))
                    counts["events"] = _delete(emptied, children=(Delivery,))
            self.record("events", counts)

    def stats(self) -> None:
        old = prunable_stats(self.stats_cutoff)
        for window in windows(old, "hour", self.size):
            batch = old.filter(window)
            with self.batch():
                count = batch.count() if self.dry_run else batch.delete()[0]
            self.record("stats", {"stats": count})


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
    (or, with ``dry_run``, the rows that would be). ``progress`` is called after every batch that
    deleted something: first the attempts, then the events (with their deliveries and remaining
    attempts), then the hourly statistics.
    """
    days = webhooks_settings.RETENTION_DAYS if older_than_days is None else older_than_days
    size = webhooks_settings.PRUNE_BATCH_SIZE if batch_size is None else batch_size
    if days < 0:
        raise ValueError("older_than_days may not be negative.")
    if size < 1:
        raise ValueError("batch_size must be at least 1.")
    now = now or timezone.now()
    pruner = _Pruner(
        cutoff=now - timedelta(days=days),
        stats_cutoff=now - timedelta(days=max(STATS_RETENTION_DAYS, days)),
        size=size,
        dry_run=dry_run,
        progress=progress,
    )
    pruner.attempts()
    pruner.events()
    pruner.stats()
    return pruner.totals

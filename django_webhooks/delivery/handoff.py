"""The handoff from a commit to a fan-out task: one task for a burst of commits, and no threads.

A commit that recorded events must be followed by a fan-out that starts after it. Pushing one
task per commit floods the broker in a burst, so the cluster's :class:`~django_webhooks.models.Handoff`
row says whether a push is needed:

* ``active_until``: a running ``process_events`` task (:class:`FanoutPoller`) looks for new events
  every :data:`POLL_SECONDS` and promises to look once more after this time. A producer that
  commits well before it needs nothing.
* ``requested_at``: a task was pushed and has not started; it looks for events when it starts.

A producer reads the row once, then trusts the promise from memory until it nears its end (in a
steady burst: one read per process every second or so, nothing per commit). Only when neither
holds does it claim the row with a conditional ``UPDATE`` and push one task. A task lost by the
broker lets its request lapse after :data:`REQUEST_TTL`; the sweeper fans out whatever is left
meanwhile. Every write here is a single autocommit statement issued after the caller's commit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, router
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..conf import webhooks_settings
from ..models import Handoff
from . import broker, fanout

logger = logging.getLogger("django_webhooks.delivery.handoff")

#: How long a poller keeps its promise after it last found events (seconds).
ACTIVE_SECONDS = 2.0
#: A poller that keeps finding events renews its promise at most this often (seconds).
RENEW_SECONDS = 0.5
#: Producers stop trusting a promise this long before it ends: room for clock skew between
#: machines and for the commit that is being made while they check.
TRUST_MARGIN = 0.5
#: A pushed task that has not started after this long is pushed again (seconds).
REQUEST_TTL = 10.0
#: How often a poller looks for new events (seconds).
POLL_SECONDS = 0.02
#: A poller asks idle workers to help at most this often (seconds).
HELPERS_EVERY = 5.0

#: Per queue: until when this process may skip the handoff (a promise or a pending request).
_covered_until: dict[str, datetime] = {}


def _queue() -> str:
    return webhooks_settings.QUEUE or "default"


def _rows() -> QuerySet[Handoff]:
    return Handoff.objects.using(router.db_for_write(Handoff))


def _sync() -> bool:
    return broker.runs_inline()


def request_processing() -> None:
    """Make sure a fan-out starts after the caller's commit; push a task only if none will.

    Called in ``transaction.on_commit`` once per transaction, or right after an autocommit
    write. Never raises: a handoff that fails is logged and left to the sweeper.
    """
    try:
        if _sync():  # the task runs inline: nothing to coalesce, nothing to wait for
            broker.enqueue_processing()
            return
        name = _queue()
        now = timezone.now()
        covered = _covered_until.get(name)
        if (covered is None or covered <= now) and _claim(name, now):
            broker.enqueue_processing()
    except Exception:
        logger.exception("Could not hand events over to a worker; the sweeper will fan them out.")


def _trusted_until(requested_at: datetime | None, active_until: datetime | None) -> datetime | None:
    ends = []
    if active_until is not None:
        ends.append(active_until - timedelta(seconds=TRUST_MARGIN))
    if requested_at is not None:
        ends.append(requested_at + timedelta(seconds=REQUEST_TTL))
    return max(ends, default=None)


def _claim(name: str, now: datetime) -> bool:
    """Whether this caller must push the task: nothing covers ``now`` and it won the row."""
    row = _rows().filter(queue=name).values_list("requested_at", "active_until").first()
    if row is None:
        try:
            _rows().create(queue=name, requested_at=now)
        except IntegrityError:  # another producer created it a moment ago, and pushes
            return False
        _covered_until[name] = now + timedelta(seconds=REQUEST_TTL)
        return True
    trusted = _trusted_until(*row)
    if trusted is not None and trusted > now:
        _covered_until[name] = trusted
        return False
    won = (
        _rows()
        .filter(queue=name)
        .filter(Q(active_until__isnull=True) | Q(active_until__lte=now + timedelta(seconds=TRUST_MARGIN)))
        .filter(Q(requested_at__isnull=True) | Q(requested_at__lte=now - timedelta(seconds=REQUEST_TTL)))
        .update(requested_at=now)
    )
    if won:
        _covered_until[name] = now + timedelta(seconds=REQUEST_TTL)
    return bool(won)


class FanoutPoller:
    """A task's side of the handoff (an :class:`engine.Poller <django_webhooks.delivery.lanes.Poller>`).

    Every delivery task fans out new events between its deliveries, so an event committed while
    a worker waits for a retry is not left waiting for a free worker. A ``process_events`` task
    (``promise=True``) also publishes the promise producers read: :meth:`activate` publishes it,
    :meth:`poll` renews it while events keep coming, :meth:`keep_alive` keeps the task running
    until it has passed, and :meth:`close` keeps it: one last look after it ends, or a successor
    task when the task's budget ran out first.
    """

    interval = POLL_SECONDS

    def __init__(self, *, promise: bool = True) -> None:
        self.promises = promise and not _sync()
        self.queue = _queue()
        self.promise = timezone.now()
        self.renewed_at = self.promise
        self.helpers_at: datetime | None = None

    def _promise(self, now: datetime) -> None:
        self.promise = now + timedelta(seconds=ACTIVE_SECONDS)
        self.renewed_at = now
        if not _rows().filter(queue=self.queue).update(active_until=self.promise, requested_at=None):
            try:
                _rows().create(queue=self.queue, active_until=self.promise)
            except IntegrityError:
                _rows().filter(queue=self.queue).update(active_until=self.promise, requested_at=None)

    def activate(self) -> None:
        if self.promises:
            self._promise(timezone.now())

    def poll(self) -> bool:
        """Fan out what committed since the last look; True if there was anything."""
        found = fanout.fan_out_all_pending()
        if found:
            now = timezone.now()
            if self.keep_alive() and (now - self.renewed_at).total_seconds() >= RENEW_SECONDS:
                self._promise(now)
            if self.helpers_at is None or (now - self.helpers_at).total_seconds() >= HELPERS_EVERY:
                self.helpers_at = now
                broker.ask_for_helpers()
        return bool(found)

    def keep_alive(self) -> bool:
        return self.promises and timezone.now() < self.promise

    def close(self) -> None:
        """Keep the promise once the task stops delivering."""
        if not self.promises:
            return
        if self.keep_alive():  # the budget ran out first: a successor keeps the promise
            _rows().filter(queue=self.queue).update(requested_at=timezone.now())
            broker.enqueue_processing()
        elif fanout.fan_out_all_pending():
            broker.enqueue_delivery(1)

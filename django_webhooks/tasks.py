"""django-q2 entry points. Thin on purpose: the work lives in handoff, fanout, engine and retention.

These dotted paths are stored in broker messages and ``Schedule`` rows: they stay importable.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from .conf import webhooks_settings
from .delivery import broker, fanout, handoff, lanes, retention
from .delivery.claiming import next_due


def process_events() -> int:
    """Fan out new events, keep looking for more while they come, and deliver them."""
    poller = handoff.FanoutPoller()
    poller.activate()
    poller.poll()
    broker.ask_for_helpers()
    try:
        return _deliver_and_continue(poller)
    finally:
        poller.close()


def deliver_due() -> int:
    """Deliver due deliveries until none is due or ``TASK_TIME_BUDGET`` is spent, fanning out new
    events meanwhile."""
    return _deliver_and_continue(handoff.FanoutPoller(promise=False))


def _deliver_and_continue(poller: handoff.FanoutPoller) -> int:
    """Deliver; a task whose budget ran out while work is due, or falls due within another
    budget (a retry, a dead worker's lease), enqueues its successor, so neither a backlog nor a
    retry waits for the next sweep."""
    started = time.monotonic()
    delivered = lanes.deliver_due(poller=poller)
    budget = float(webhooks_settings.TASK_TIME_BUDGET)
    if time.monotonic() - started >= budget and (
        lanes.due_count(limit=1) or next_due(timezone.now(), budget) is not None
    ):
        broker.enqueue_delivery(1)
    return delivered


def sweep() -> dict[str, Any]:
    """Catch up on whatever a lost handoff or a dead worker left behind.

    Fans out events never fanned out, returns expired leases to ``pending`` and enqueues
    delivery tasks for what is due. Every step is a conditional update, so several clusters
    may sweep at once.
    """
    fanned_out = fanout.fan_out_all_pending()
    released = lanes.release_expired_leases()
    due = lanes.due_count()
    enqueued = broker.enqueue_delivery(broker.helpers_for(due) + 1) if due else 0
    return {"fanned_out": fanned_out, "released": released, "due": due, "enqueued": enqueued}


def prune() -> dict[str, Any]:
    """Delete attempts, deliveries and events older than ``RETENTION_DAYS``."""

    return retention.prune()

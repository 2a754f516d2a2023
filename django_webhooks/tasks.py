"""django-q2 entry points. Thin on purpose: the work lives in fanout, engine and retention."""

from __future__ import annotations

import math
import time
from typing import Any

from . import engine, fanout, queue
from .conf import webhooks_settings


def _workers() -> int:
    from django_q.conf import Conf

    return int(Conf.WORKERS or 1)


def _helpers_for(due: int) -> int:
    """Extra delivery tasks worth enqueuing for ``due`` deliveries, beyond the running one."""
    batches = math.ceil(due / max(1, int(webhooks_settings.CLAIM_BATCH_SIZE)))
    return max(0, min(batches - 1, _workers()))


def process_events() -> int:
    """Fan out new events, ask idle workers to help when much is due, then deliver."""
    fanout.fan_out_pending()
    # Counting further than what would change the number of helpers only costs time.
    enough = (_workers() + 1) * max(1, int(webhooks_settings.CLAIM_BATCH_SIZE))
    helpers = _helpers_for(engine.due_count(limit=enough))
    if helpers:
        queue.enqueue_delivery(helpers)
    return _deliver_and_continue()


def deliver_due() -> int:
    """Deliver due deliveries until none is due or ``TASK_TIME_BUDGET`` is spent."""
    return _deliver_and_continue()


def _deliver_and_continue() -> int:
    """Deliver; a task that spent its whole budget with work still due enqueues its successor,
    so a large backlog keeps draining instead of waiting for the next sweep."""
    started = time.monotonic()
    delivered = engine.deliver_due()
    budget = float(webhooks_settings.TASK_TIME_BUDGET)
    if delivered and time.monotonic() - started >= budget and engine.due_count(limit=1):
        queue.enqueue_delivery(1)
    return delivered


def sweep() -> dict[str, Any]:
    """Catch up on whatever a lost handoff or a dead worker left behind.

    Fans out events never fanned out, returns expired leases to ``pending`` and enqueues
    delivery tasks for what is due. Every step is a conditional update, so several clusters
    may sweep at once.
    """
    fanned_out = fanout.fan_out_pending()
    released = engine.release_expired_leases()
    due = engine.due_count()
    enqueued = queue.enqueue_delivery(_helpers_for(due) + 1) if due else 0
    return {"fanned_out": fanned_out, "released": released, "due": due, "enqueued": enqueued}


def prune() -> dict[str, Any]:
    """Delete attempts, deliveries and events older than ``RETENTION_DAYS``."""
    from . import retention

    return retention.prune()

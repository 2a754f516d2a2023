"""Task entry points. Thin on purpose: the work lives in handoff, fanout, lanes, handshake and retention.

django-q2 imports and calls the plain functions (``django_webhooks.tasks.process_events`` ...);
Django Tasks imports the ``Task`` objects ``process_events_task``, ``deliver_due_task``,
``verify_endpoints_task``, ``sweep_task`` and ``prune_task``. Both kinds of paths are stored in queued tasks and schedules:
they stay importable. The ``Task`` objects are built on first access (:func:`__getattr__`), not
at import: building one validates it against ``settings.TASKS``, which a project on django-q2
need not have, and whose queues need not include the framework's ``"default"``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from django.utils import timezone

from .conf import webhooks_settings
from .delivery import broker, fanout, handoff, handshake, lanes, retention, via_django_tasks
from .delivery.claiming import next_due

#: A task that ends with a retry due within this many seconds defers a successor to that moment
#: where the dispatcher can (:func:`broker.defer_delivery`); the sweeper finds later ones.
DEFER_HORIZON = 3600.0


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
    retry waits for the next sweep. Otherwise, where the dispatcher can defer a task, the next
    retry gets one that runs when it falls due."""
    started = time.monotonic()
    delivered = lanes.deliver_due(poller=poller)
    budget = float(webhooks_settings.TASK_TIME_BUDGET)
    if time.monotonic() - started >= budget and (
        lanes.due_count(limit=1) or next_due(timezone.now(), budget) is not None
    ):
        broker.enqueue_delivery(1)
    elif broker.can_defer():
        upcoming = next_due(timezone.now(), DEFER_HORIZON)
        if upcoming is not None and not upcoming.lease:  # a lease is renewed, or the sweeper frees it
            broker.defer_delivery(upcoming.at)
    return delivered


def verify_endpoints() -> int:
    """Run the due endpoint handshakes until none is due or ``TASK_TIME_BUDGET`` is spent; a task
    whose budget ran out with handshakes still due enqueues its successor."""
    ran = handshake.verify_due()
    if handshake.due_count(limit=1):
        broker.enqueue_handshake()
    return ran


def sweep() -> dict[str, Any]:
    """Catch up on whatever a lost handoff or a dead worker left behind.

    Fans out events never fanned out, returns expired leases to ``pending``, enqueues
    delivery tasks for what is due and a handshake task when endpoint handshakes are due. Every
    step is a conditional update, so several clusters may sweep at once.
    """
    fanned_out = fanout.fan_out_all_pending()
    released = lanes.release_expired_leases()
    due = lanes.due_count()
    enqueued = broker.enqueue_delivery(broker.helpers_for(due) + 1) if due else 0
    handshakes = handshake.due_count()
    if handshakes:
        broker.enqueue_handshake()
    return {"fanned_out": fanned_out, "released": released, "due": due, "enqueued": enqueued, "handshakes": handshakes}


def prune() -> dict[str, Any]:
    """Delete attempts, deliveries and events older than ``RETENTION_DAYS``."""

    return retention.prune()


#: Django Tasks entry points (``<name>_task``) and the function each runs.
TASK_ENTRY_POINTS: dict[str, Callable[[], Any]] = {
    "process_events_task": process_events,
    "deliver_due_task": deliver_due,
    "verify_endpoints_task": verify_endpoints,
    "sweep_task": sweep,
    "prune_task": prune,
}


def __getattr__(name: str) -> Any:
    """Build the Django Tasks ``Task`` called ``name`` on first access (PEP 562), then keep it.

    The framework stores ``Task.module_path`` (the function's module and qualified name) and a
    worker imports that path expecting the ``Task``, so the function it wraps is named after it.
    """
    target = TASK_ENTRY_POINTS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def run() -> Any:
        return target()

    run.__module__, run.__name__, run.__qualname__ = __name__, name, name
    run.__doc__ = target.__doc__
    task = globals()[name] = via_django_tasks.build_task(run)
    return task

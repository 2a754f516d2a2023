"""The dispatcher seam: pushing our tasks to the engine ``DISPATCHER`` names, never raising.

Two engines: django-q2 (``"django_q"``, the default; :mod:`.via_django_q`) and Django Tasks
(``"django_tasks"``; :mod:`.via_django_tasks`). Each is imported only when chosen, so neither
package is needed for the other. Whether a commit needs a push at all is decided in
:mod:`django_webhooks.delivery.handoff`; what the tasks do is in :mod:`django_webhooks.tasks`.

A push that fails is logged and loses nothing: events wait with ``fanned_out_at`` NULL and
deliveries with their ``next_attempt_at``, and the sweeper finds both.
"""

from __future__ import annotations

import logging
import math
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from ..conf import webhooks_settings
from .claiming import due_count

if TYPE_CHECKING:
    from django_q.brokers import Broker

logger = logging.getLogger("django_webhooks.delivery.broker")

#: The values ``DISPATCHER`` may take.
DISPATCHERS = ("django_q", "django_tasks")

PROCESS_EVENTS = "process_events"
DELIVER_DUE = "deliver_due"
VERIFY_ENDPOINTS = "verify_endpoints"

#: django-q2 brokers, one per process and cluster name: django-q2 otherwise builds a new broker
#: (for Redis: a new client and connection) on every ``async_task()``.
_brokers: dict[str | None, Broker] = {}
#: Per queue: when the delivery task this process last deferred runs (see :func:`defer_delivery`).
_deferred_until: dict[str, datetime] = {}


def _on_django_q() -> bool:
    return webhooks_settings.DISPATCHER == "django_q"


def get_broker() -> Broker:
    """The django-q2 broker for the ``QUEUE`` cluster, created once per process (``"django_q"`` only)."""
    cluster = webhooks_settings.QUEUE
    broker = _brokers.get(cluster)
    if broker is None:
        from . import via_django_q

        broker = _brokers[cluster] = via_django_q.build(cluster)
    return broker


def _push(name: str, run_after: datetime | None = None) -> None:
    if _on_django_q():
        from . import via_django_q

        via_django_q.enqueue(get_broker(), name, webhooks_settings.QUEUE)
    else:
        from . import via_django_tasks

        via_django_tasks.enqueue(name, run_after)


def enqueue_processing() -> bool:
    """Ask a worker to fan out pending events. False (and a logged error) if the push failed."""
    try:
        _push(PROCESS_EVENTS)
    except Exception:
        logger.exception("Could not enqueue %s; the sweeper will fan out the pending events.", PROCESS_EVENTS)
        return False
    return True


def enqueue_handshake() -> bool:
    """Ask a worker to run the due endpoint handshakes (:mod:`.handshake`). False (and a logged
    error) if the push failed."""
    try:
        _push(VERIFY_ENDPOINTS)
    except Exception:
        logger.exception("Could not enqueue %s; the sweeper will retry.", VERIFY_ENDPOINTS)
        return False
    return True


def enqueue_delivery(n: int = 1) -> int:
    """Enqueue ``n`` delivery tasks; returns how many were pushed (stops at the first error)."""
    sent = 0
    for _ in range(max(0, n)):
        try:
            _push(DELIVER_DUE)
        except Exception:
            logger.exception("Could not enqueue %s; the sweeper will retry.", DELIVER_DUE)
            break
        sent += 1
    return sent


def can_defer() -> bool:
    """Whether a task can be pushed to run later: Django Tasks on a backend with ``run_after``."""
    if _on_django_q():
        return False
    from . import via_django_tasks

    try:
        return via_django_tasks.supports_defer()
    except Exception:  # reported by the checks; the sweeper covers for it
        return False


def defer_delivery(at: datetime) -> bool:
    """Have a delivery task run at ``at`` (a retry that falls due after the running task ends).

    Only where :func:`can_defer`; otherwise, or if the push fails, the sweeper finds the retry
    within a minute. A task this process deferred to run before ``at`` covers it (when it ends,
    it defers the next one), so a worker keeps at most a few deferred tasks waiting, not one per
    task it ran. Returns whether a task was pushed.
    """
    queue = webhooks_settings.QUEUE or ""
    pending = _deferred_until.get(queue)
    if (pending is not None and timezone.now() < pending <= at) or not can_defer():
        return False
    try:
        _push(DELIVER_DUE, run_after=at)
    except Exception:
        logger.exception("Could not defer %s; the sweeper will send the retry.", DELIVER_DUE)
        return False
    _deferred_until[queue] = at
    return True


def runs_inline() -> bool:
    """Whether a push runs the task right away in the caller (django-q2 ``sync``, the Immediate backend)."""
    if _on_django_q():
        from . import via_django_q

        return via_django_q.runs_inline()
    from . import via_django_tasks

    return via_django_tasks.runs_inline()


def workers() -> int:
    """How many workers may run our tasks at once: on django-q2, those of every running cluster
    on the broker (at least ``Q_CLUSTER["workers"]``); on Django Tasks, ``TASKS_WORKERS``."""
    if _on_django_q():
        from . import via_django_q

        return via_django_q.workers(get_broker())
    from . import via_django_tasks

    return via_django_tasks.workers()


def helpers_for(due: int) -> int:
    """Extra delivery tasks worth enqueuing for ``due`` deliveries, beyond the running one."""
    batches = math.ceil(due / max(1, int(webhooks_settings.CLAIM_BATCH_SIZE)))
    return max(0, min(batches - 1, workers()))


def ask_for_helpers() -> int:
    """Enqueue delivery tasks for idle workers when more is due than one task sends at once."""
    # Counting further than what would change the number of helpers only costs time.
    enough = (workers() + 1) * max(1, int(webhooks_settings.CLAIM_BATCH_SIZE))
    helpers = helpers_for(due_count(limit=enough))
    return enqueue_delivery(helpers) if helpers else 0

"""The handoff to django-q2: put processing and delivery tasks on the broker, never raising.

One broker object is reused per process and cluster name: django-q2 otherwise builds a new broker
(for Redis: a new client and connection) on every ``async_task()``.

After a commit, :func:`request_processing` is what the capture side calls. It wakes a daemon
thread that pushes the task, so the request never waits on the broker (a Redis round trip, or
the ORM broker's insert and commit); requests that arrive while a push is pending share it,
because a task fans out every event committed before it runs. A handoff lost to a crash is
harmless: the sweeper fans out events with ``fanned_out_at`` NULL.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from django.db import connections

from .background import BackgroundLoop, off_request_thread
from .conf import webhooks_settings

logger = logging.getLogger("django_webhooks.queue")

PROCESS_EVENTS_TASK = "django_webhooks.tasks.process_events"
DELIVER_DUE_TASK = "django_webhooks.tasks.deliver_due"

#: How long the handoff thread waits for more commits before pushing one task for all of them.
HANDOFF_COALESCE_SECONDS = 0.005

_brokers: dict[str | None, Any] = {}


def _request_safe_orm_broker(list_key: str | None) -> Any:
    """django-q2's ORM broker, minus the ``close_old_connections()`` it runs before every enqueue.

    That call is meant for worker threads; in a request under autocommit it closes the user's
    database connection after each handoff and forces a reconnect on the next query.
    """
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.models import OrmQ

    class RequestSafeORM(ORM):
        @staticmethod
        def get_connection(list_key: str | None = None) -> Any:
            return OrmQ.objects.using(Conf.ORM)

    return RequestSafeORM(list_key=list_key)


def get_broker() -> Any:
    """The django-q2 broker for the ``QUEUE`` cluster, created once per process."""
    cluster = webhooks_settings.QUEUE
    broker = _brokers.get(cluster)
    if broker is None:
        from django_q.brokers import get_broker as build_broker
        from django_q.brokers.orm import ORM

        broker = build_broker(cluster)
        if type(broker) is ORM:
            broker = _request_safe_orm_broker(cluster)
        _brokers[cluster] = broker
    return broker


def reset_broker() -> None:
    """Forget the cached brokers (after changing Q_CLUSTER in tests, or after a fork)."""
    _brokers.clear()


def _enqueue(task_path: str) -> None:
    from django_q.tasks import async_task

    q_options: dict[str, Any] = {"broker": get_broker(), "save": False}
    cluster = webhooks_settings.QUEUE
    if cluster:
        q_options["cluster"] = cluster
    async_task(task_path, q_options=q_options)


def enqueue_processing() -> bool:
    """Ask a worker to fan out pending events. False (and a logged error) if the broker failed.

    A lost handoff loses nothing: the event stays with ``fanned_out_at`` NULL and the sweeper
    fans it out later.
    """
    try:
        _enqueue(PROCESS_EVENTS_TASK)
    except Exception:
        logger.exception("Could not enqueue %s; the sweeper will fan out the pending events.", PROCESS_EVENTS_TASK)
        return False
    return True


def enqueue_delivery(n: int = 1) -> int:
    """Enqueue ``n`` delivery tasks; returns how many reached the broker (stops at the first error)."""
    sent = 0
    for _ in range(max(0, n)):
        try:
            _enqueue(DELIVER_DUE_TASK)
        except Exception:
            logger.exception("Could not enqueue %s; the sweeper will retry.", DELIVER_DUE_TASK)
            break
        sent += 1
    return sent


_handoff = BackgroundLoop(
    "django-webhooks-handoff", enqueue_processing, coalesce=HANDOFF_COALESCE_SECONDS, on_idle=connections.close_all
)


@atexit.register
def _push_pending_handoff() -> None:
    if not _handoff.flush(timeout=2.0):
        logger.warning("Exiting with a processing task not yet enqueued; the sweeper will fan out the events.")


def _enqueue_inline(broker: Any) -> bool:
    """Whether the push happens on the calling thread: in django-q2's sync mode, and for the ORM
    broker under Django's tests or on a database other threads cannot see."""
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    if Conf.SYNC:
        return True
    return isinstance(broker, ORM) and not off_request_thread(Conf.ORM)


def request_processing() -> None:
    """Ask for one processing task without making the caller wait on the broker.

    Called in ``transaction.on_commit`` once per transaction. Never raises.
    """
    try:
        inline = _enqueue_inline(get_broker())
    except Exception:
        logger.exception("Could not set up the django-q2 broker; the sweeper will fan out the pending events.")
        return
    if inline:
        enqueue_processing()
    else:
        _handoff.wake()


def flush_handoff(timeout: float = 5.0) -> bool:
    """Wait until the handoff thread has pushed what was requested (tests, shutdown hooks)."""
    return _handoff.flush(timeout)

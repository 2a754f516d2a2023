"""The handoff to django-q2: put processing and delivery tasks on the broker, never raising.

One broker object is reused per process and cluster name: django-q2 otherwise builds a new broker
(for Redis: a new client and connection) on every ``async_task()``.

After a commit, :func:`request_processing` is what the capture side calls. With the ORM broker
it enqueues at once (a local insert). With a network broker (Redis, SQS...) it wakes a daemon
thread that pushes the task, so the request never waits on the broker; requests that arrive
while a push is pending share it, because a task fans out every event committed before it
runs. A handoff lost to a crash is harmless: the sweeper fans out events with
``fanned_out_at`` NULL.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from typing import Any

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


class _HandoffThread:
    """Pushes processing tasks from a daemon thread; one push covers every request before it."""

    def __init__(self) -> None:
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        with self._lock:
            self._idle.clear()
            self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="django-webhooks-handoff", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            # Let the requests of the next few milliseconds share this push: one task fans out
            # every event committed before it runs, so a burst of commits needs one push.
            time.sleep(HANDOFF_COALESCE_SECONDS)
            self._wake.clear()
            enqueue_processing()
            with self._lock:
                if not self._wake.is_set():
                    self._idle.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` seconds) until no push is pending; True if none is."""
        return self._idle.wait(timeout)

    def after_fork(self) -> None:
        self.__init__()


_handoff = _HandoffThread()
os.register_at_fork(after_in_child=_handoff.after_fork)


@atexit.register
def _push_pending_handoff() -> None:
    if not _handoff.flush(timeout=2.0):
        logger.warning("Exiting with a processing task not yet enqueued; the sweeper will fan out the events.")


def _is_local_broker(broker: Any) -> bool:
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    return isinstance(broker, ORM) or bool(Conf.SYNC)


def request_processing() -> None:
    """Ask for one processing task without making the caller wait on a network broker.

    Called in ``transaction.on_commit`` once per transaction. Never raises.
    """
    try:
        local = _is_local_broker(get_broker())
    except Exception:
        logger.exception("Could not set up the django-q2 broker; the sweeper will fan out the pending events.")
        return
    if local:
        enqueue_processing()
    else:
        _handoff.request()


def flush_handoff(timeout: float = 5.0) -> bool:
    """Wait until the handoff thread has pushed what was requested (tests, shutdown hooks)."""
    return _handoff.flush(timeout)

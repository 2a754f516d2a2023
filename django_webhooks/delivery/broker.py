"""Pushing our tasks to django-q2's broker, never raising.

One broker object is reused per process and cluster name: django-q2 otherwise builds a new broker
(for Redis: a new client and connection) on every ``async_task()``. Whether a commit needs a
push at all is decided in :mod:`django_webhooks.delivery.handoff`.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

from django_q.brokers import Broker
from django_q.brokers import get_broker as build_broker
from django_q.conf import Conf

from ..conf import webhooks_settings
from .claiming import due_count

if TYPE_CHECKING:
    from django.db.models import QuerySet

logger = logging.getLogger("django_webhooks.delivery.broker")

PROCESS_EVENTS_TASK = "django_webhooks.tasks.process_events"
DELIVER_DUE_TASK = "django_webhooks.tasks.deliver_due"

_brokers: dict[str | None, Broker] = {}


def _request_safe_orm_broker(list_key: str | None) -> Broker:
    """django-q2's ORM broker, minus the ``close_old_connections()`` it runs before every enqueue.

    That call is meant for worker threads; in a request under autocommit it closes the user's
    database connection after each handoff and forces a reconnect on the next query.
    """
    # Not at the top, like every import below of a django-q2 module that loads its models: those
    # need "django_q" in INSTALLED_APPS, and this module is loaded (by the admin and the capture
    # code) whether it is or not (check W008).
    from django_q.brokers.orm import ORM
    from django_q.models import OrmQ

    class RequestSafeORM(ORM):
        @staticmethod
        def get_connection(list_key: str | None = None) -> QuerySet[OrmQ]:
            return OrmQ.objects.using(Conf.ORM)

    return RequestSafeORM(list_key=list_key)


def get_broker() -> Broker:
    """The django-q2 broker for the ``QUEUE`` cluster, created once per process.

    The Redis client's connection pool notices a fork and opens new connections in the child;
    the ORM broker uses Django's connections.
    """
    cluster = webhooks_settings.QUEUE
    broker = _brokers.get(cluster)
    if broker is None:
        from django_q.brokers.orm import ORM  # loads django-q2's models (see above)

        broker = build_broker(cluster)
        if type(broker) is ORM:
            broker = _request_safe_orm_broker(cluster)
        _brokers[cluster] = broker
    return broker


def _enqueue(task_path: str) -> None:
    from django_q.tasks import async_task  # loads django-q2's models (see above)

    q_options: dict[str, Any] = {"broker": get_broker(), "save": False}
    cluster = webhooks_settings.QUEUE
    if cluster:
        q_options["cluster"] = cluster
    async_task(task_path, q_options=q_options)


def enqueue_processing() -> bool:
    """Ask a worker to fan out pending events. False (and a logged error) if the broker failed.

    A lost push loses nothing: the event stays with ``fanned_out_at`` NULL and the sweeper
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


def _workers() -> int:
    return int(Conf.WORKERS or 1)


def helpers_for(due: int) -> int:
    """Extra delivery tasks worth enqueuing for ``due`` deliveries, beyond the running one."""
    batches = math.ceil(due / max(1, int(webhooks_settings.CLAIM_BATCH_SIZE)))
    return max(0, min(batches - 1, _workers()))


def ask_for_helpers() -> int:
    """Enqueue delivery tasks for idle workers when more is due than one task sends at once."""
    # Counting further than what would change the number of helpers only costs time.
    enough = (_workers() + 1) * max(1, int(webhooks_settings.CLAIM_BATCH_SIZE))
    helpers = helpers_for(due_count(limit=enough))
    return enqueue_delivery(helpers) if helpers else 0

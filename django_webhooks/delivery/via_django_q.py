"""The django-q2 dispatcher (``DISPATCHER = "django_q"``, the default): our tasks on a qcluster.

Loaded by :mod:`django_webhooks.delivery.broker` only when that is the dispatcher, so a project
on Django Tasks never imports django-q2. The broker object itself is cached by the seam
(:func:`django_webhooks.delivery.broker.get_broker`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django_q.brokers import Broker
from django_q.brokers import get_broker as build_broker
from django_q.conf import Conf

if TYPE_CHECKING:
    from django.db.models import QuerySet

#: django-q2 imports and calls our plain functions by these paths (stored in its messages).
TASK_PATHS = {
    "process_events": "django_webhooks.tasks.process_events",
    "deliver_due": "django_webhooks.tasks.deliver_due",
}


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


def build(cluster: str | None) -> Broker:
    """A new django-q2 broker for ``cluster``. The Redis client's connection pool notices a fork
    and opens new connections in the child; the ORM broker uses Django's connections."""
    from django_q.brokers.orm import ORM  # loads django-q2's models (see above)

    broker = build_broker(cluster)
    if type(broker) is ORM:
        broker = _request_safe_orm_broker(cluster)
    return broker


def enqueue(broker: Broker, name: str, cluster: str | None) -> None:
    """Push task ``name`` (a key of :data:`TASK_PATHS`) without saving its result."""
    from django_q.tasks import async_task  # loads django-q2's models (see above)

    q_options: dict[str, Any] = {"broker": broker, "save": False}
    if cluster:
        q_options["cluster"] = cluster
    async_task(TASK_PATHS[name], q_options=q_options)


def workers() -> int:
    """Worker processes of a cluster (``Q_CLUSTER["workers"]``)."""
    return int(Conf.WORKERS or 1)


def runs_inline() -> bool:
    """django-q2's ``sync`` mode: a push runs the task in the caller, before it returns."""
    return bool(Conf.SYNC)

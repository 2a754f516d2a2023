"""The django-q2 dispatcher (``DISPATCHER = "django_q"``, the default): our tasks on a qcluster.

Loaded by :mod:`django_webhooks.delivery.broker` only when that is the dispatcher, so a project
on Django Tasks never imports django-q2. The broker object itself is cached by the seam
(:func:`django_webhooks.delivery.broker.get_broker`).
"""

from __future__ import annotations

import time
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
    "verify_endpoints": "django_webhooks.tasks.verify_endpoints",
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


#: How long a count of the workers of every running cluster is reused (seconds).
FLEET_CACHE_SECONDS = 5.0
_fleet: tuple[float, int] | None = None


def workers(broker: Broker) -> int:
    """Worker processes of every running cluster sharing this broker, at least this cluster's
    ``Q_CLUSTER["workers"]``.

    Several machines each running a ``qcluster`` on one broker get enough delivery tasks for all
    of their workers, not just for one machine's. Each cluster publishes its statistics to the
    broker every few seconds (on Redis; the ORM broker keeps them in the Django cache, which is
    shared only when the cache is); the count is reused for :data:`FLEET_CACHE_SECONDS`.
    """
    global _fleet
    local = int(Conf.WORKERS or 1)
    now = time.monotonic()
    if _fleet is None or _fleet[0] <= now:
        _fleet = (now + FLEET_CACHE_SECONDS, _running_workers(broker))
    return max(local, _fleet[1])


def _running_workers(broker: Broker) -> int:
    """Workers of the clusters whose statistics ``broker`` holds (0 when it holds none)."""
    from django_q.status import Stat  # loads django-q2's models (see above)

    try:
        stats = Stat.get_all(broker=broker)
    except Exception:  # a broker that keeps no statistics, or one that is down: count this cluster alone
        return 0
    stopping = {Conf.STOPPING, Conf.STOPPED}
    return sum(
        len(getattr(stat, "workers", None) or ()) for stat in stats if getattr(stat, "status", None) not in stopping
    )


def runs_inline() -> bool:
    """django-q2's ``sync`` mode: a push runs the task in the caller, before it returns."""
    return bool(Conf.SYNC)

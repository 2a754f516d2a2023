"""Gauges read from the database when Prometheus scrapes (in the process serving the view).

They describe the queue, which no single process knows: how much waits, how late the work that
is due is, how many endpoints are held back. Each figure is one query on an index of
:mod:`django_webhooks.models`; no query reads the attempts table.

"Due" is what a worker would claim now (:mod:`django_webhooks.delivery.claiming`): a pending
delivery whose ``next_attempt_at`` has passed, of an enabled subscription whose circuit is
closed. Deliveries of disabled subscriptions or open circuits are not waiting for a worker, so
they do not age the backlog; they are counted in ``django_webhooks_deliveries_pending`` and by
the two subscription gauges instead.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db import DatabaseError
from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from ..delivery.claiming import deliverable
from ..models import Delivery, DeliveryStatus, Event, Subscription

logger = logging.getLogger("django_webhooks.metrics")


def oldest_due_at(now: datetime) -> datetime | None:
    """``next_attempt_at`` of the longest-due delivery a worker could claim now, None if none is due.

    One probe per deliverable subscription into ``dwh_delivery_sub_due_idx`` (its earliest pending
    delivery), instead of a walk of the due index that would first step over every delivery
    parked behind a disabled subscription or an open circuit.
    """
    earliest = (
        Delivery.objects.filter(subscription=OuterRef("pk"), status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values("next_attempt_at")[:1]
    )
    return Subscription.objects.filter(deliverable(now)).aggregate(oldest=Min(Subquery(earliest)))["oldest"]


def queue_figures(now: datetime | None = None) -> dict[str, float]:
    """The gauges' values, by metric name."""
    now = now or timezone.now()
    oldest_due = oldest_due_at(now)
    oldest_event = (
        Event.objects.filter(fanned_out_at__isnull=True).order_by("id").values_list("created_at", flat=True).first()
    )
    return {
        "django_webhooks_deliveries_pending": Delivery.objects.filter(status=DeliveryStatus.PENDING).count(),
        "django_webhooks_deliveries_in_flight": Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT).count(),
        "django_webhooks_oldest_due_delivery_age_seconds": (
            max((now - oldest_due).total_seconds(), 0.0) if oldest_due else 0.0
        ),
        "django_webhooks_events_pending_fanout": Event.objects.filter(fanned_out_at__isnull=True).count(),
        "django_webhooks_oldest_pending_event_age_seconds": (
            max((now - oldest_event).total_seconds(), 0.0) if oldest_event else 0.0
        ),
        "django_webhooks_circuits_open": Subscription.objects.filter(enabled=True, circuit_open_until__gt=now).count(),
        "django_webhooks_subscriptions_disabled": Subscription.objects.filter(enabled=False).count(),
    }


GAUGE_HELP = {
    "django_webhooks_deliveries_pending": "Deliveries waiting for an attempt (due or scheduled, any subscription).",
    "django_webhooks_deliveries_in_flight": "Deliveries leased by a worker (being sent).",
    "django_webhooks_oldest_due_delivery_age_seconds": (
        "Seconds since the longest-due deliverable delivery became due (0: nothing is due)."
    ),
    "django_webhooks_events_pending_fanout": "Events recorded and not yet fanned out to subscriptions.",
    "django_webhooks_oldest_pending_event_age_seconds": (
        "Age of the oldest event waiting for fan-out, in seconds (0: none waits)."
    ),
    "django_webhooks_circuits_open": "Enabled subscriptions whose circuit breaker is open.",
    "django_webhooks_subscriptions_disabled": "Disabled subscriptions.",
}


class QueueCollector:
    """A prometheus_client collector yielding :func:`queue_figures` as gauges at each scrape.

    A database error leaves the gauges out of that scrape (logged) rather than failing it, so the
    counters still arrive and ``absent()`` alerts on the gauges.
    """

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            figures = queue_figures()
        except DatabaseError:
            logger.exception("Could not read the webhook queue gauges.")
            return
        for name, value in figures.items():
            yield GaugeMetricFamily(name, GAUGE_HELP[name], value=value)

"""The queue gauges, read from the database at scrape time."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_webhooks.metrics.collectors import oldest_due_at, queue_figures
from django_webhooks.models import DeliveryStatus, Event, Subscription
from tests.metrics.conftest import promtool_check

pytestmark = pytest.mark.django_db


def test_the_gauges_describe_the_queue(make_subscription, make_delivery):
    now = timezone.now()
    ready = make_subscription()
    make_delivery(ready, next_attempt_at=now - timedelta(seconds=30))
    make_delivery(ready, next_attempt_at=now + timedelta(hours=1))  # a retry, not due yet
    make_delivery(ready, status=DeliveryStatus.IN_FLIGHT)
    make_delivery(ready, status=DeliveryStatus.SUCCEEDED, next_attempt_at=None)
    # Parked: not waiting for a worker, so they do not age the backlog.
    disabled = make_subscription(enabled=False)
    make_delivery(disabled, next_attempt_at=now - timedelta(hours=5))
    tripped = make_subscription(circuit_open_until=now + timedelta(minutes=1))
    make_delivery(tripped, next_attempt_at=now - timedelta(hours=2))
    Event.objects.create(event_type="order.created", payload={}, created_at=now - timedelta(seconds=7))

    figures = queue_figures(now)

    assert figures["django_webhooks_deliveries_pending"] == 4
    assert figures["django_webhooks_deliveries_in_flight"] == 1
    assert figures["django_webhooks_oldest_due_delivery_age_seconds"] == pytest.approx(30, abs=0.01)
    assert figures["django_webhooks_events_pending_fanout"] == 1
    assert figures["django_webhooks_oldest_pending_event_age_seconds"] == pytest.approx(7, abs=0.01)
    assert figures["django_webhooks_circuits_open"] == 1
    assert figures["django_webhooks_subscriptions_disabled"] == 1


def test_nothing_due_is_zero_seconds(make_subscription, make_delivery):
    subscription = make_subscription()
    make_delivery(subscription, next_attempt_at=timezone.now() + timedelta(minutes=5))
    figures = queue_figures()
    assert figures["django_webhooks_oldest_due_delivery_age_seconds"] == 0
    assert figures["django_webhooks_oldest_pending_event_age_seconds"] == 0


def test_a_closed_circuit_counts_again(make_subscription, make_delivery):
    now = timezone.now()
    subscription = make_subscription(circuit_open_until=now - timedelta(seconds=1))
    make_delivery(subscription, next_attempt_at=now - timedelta(seconds=90))
    assert oldest_due_at(now) == now - timedelta(seconds=90)
    assert queue_figures(now)["django_webhooks_circuits_open"] == 0


def test_the_exposition_passes_promtool(staff_client, make_subscription, make_delivery):
    make_delivery(make_subscription(), next_attempt_at=timezone.now() - timedelta(seconds=3))
    promtool_check(staff_client.get("/metrics/").content.decode())


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="EXPLAIN plans are PostgreSQL's (DATABASE_URL)")
def test_the_gauge_queries_use_indexes(make_subscription, make_delivery):
    """With sequential scans priced out, every gauge query still has a plan: it has an index to use."""
    subscription = make_subscription()
    make_delivery(subscription, next_attempt_at=timezone.now() - timedelta(seconds=1))
    from django.db.models import OuterRef, Subquery

    from django_webhooks.models import Delivery

    now = timezone.now()
    earliest = (
        Delivery.objects.filter(subscription=OuterRef("pk"), status=DeliveryStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values("next_attempt_at")[:1]
    )
    queries = {
        "pending": Delivery.objects.filter(status=DeliveryStatus.PENDING),
        "in_flight": Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT),
        "events": Event.objects.filter(fanned_out_at__isnull=True),
        "oldest_event": Event.objects.filter(fanned_out_at__isnull=True).order_by("id")[:1],
        "disabled": Subscription.objects.filter(enabled=False),
        "oldest_due": Subscription.objects.filter(enabled=True)
        .exclude(circuit_open_until__gt=now)
        .annotate(oldest=Subquery(earliest)),
    }
    # The partial indexes on pending / in-flight deliveries all fit; the planner picks one.
    expected = {
        "pending": ("dwh_delivery_due_idx", "dwh_delivery_sub_due_idx"),
        "in_flight": ("dwh_delivery_lease_idx", "dwh_delivery_lane_idx"),
        "events": ("dwh_event_pending_idx",),
        "oldest_event": ("dwh_event_pending_idx",),
        "disabled": ("dwh_sub_enabled_owner_idx",),
        "oldest_due": ("dwh_delivery_sub_due_idx",),
    }
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for name, queryset in queries.items():
                plan = queryset.explain()
                assert "Seq Scan" not in plan, f"{name}: {plan}"
                assert any(index in plan for index in expected[name]), f"{name}: {plan}"
        finally:
            cursor.execute("SET enable_seqscan = on")

"""Hourly attempt statistics (django_webhooks/delivery/attempt_stats.py): counted as attempts are recorded."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_webhooks.delivery import attempt_stats, lanes
from django_webhooks.delivery.attempt_stats import failure_class
from django_webhooks.models import AttemptStats, DeliveryAttempt, ErrorClass
from django_webhooks.stats import LATENCY_BOUNDS_MS, LATENCY_COLUMNS
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

HOUR = datetime(2026, 11, 28, 14, tzinfo=UTC)


def attempt(subscription, at=HOUR, *, succeeded=True, status=200, error_class="", duration_ms=40) -> DeliveryAttempt:
    """An attempt as ``outcomes.record`` hands it to ``add`` (only what the statistics read)."""
    return DeliveryAttempt(
        subscription_id=subscription.pk,
        created_at=at,
        succeeded=succeeded,
        response_status=status,
        error_class=error_class,
        duration_ms=duration_ms,
    )


def failed(subscription, at=HOUR, status=500, error_class=ErrorClass.HTTP_STATUS, duration_ms=40) -> DeliveryAttempt:
    return attempt(subscription, at, succeeded=False, status=status, error_class=error_class, duration_ms=duration_ms)


def row(subscription, hour=HOUR) -> AttemptStats:
    return AttemptStats.objects.get(subscription=subscription, hour=hour)


@pytest.mark.parametrize(
    ("status", "error_class", "expected"),
    [
        (404, ErrorClass.HTTP_STATUS, "4xx"),
        (429, ErrorClass.HTTP_STATUS, "4xx"),
        (410, ErrorClass.HTTP_STATUS, "4xx"),
        (500, ErrorClass.HTTP_STATUS, "5xx"),
        (503, ErrorClass.HTTP_STATUS, "5xx"),
        (503, ErrorClass.NONE, "5xx"),  # a custom transport that left error_class empty
        (None, ErrorClass.TIMEOUT, "timeout"),
        (None, ErrorClass.CONNECTION, "connection"),
        (None, ErrorClass.DNS, "connection"),
        (None, ErrorClass.TLS, "connection"),
        (302, ErrorClass.REDIRECT, "other"),
        (None, ErrorClass.BLOCKED_TARGET, "other"),
        (None, ErrorClass.INVALID_TARGET, "other"),
        (None, ErrorClass.INTERNAL, "other"),
        (200, ErrorClass.NONE, "other"),  # a 2xx the retry policy did not accept
        (None, ErrorClass.NONE, "other"),
    ],
)
def test_failure_class(status, error_class, expected):
    assert failure_class(status, error_class) == expected


def test_attempts_are_counted_by_outcome_class_and_latency(make_subscription):
    subscription = make_subscription()
    attempt_stats.add(
        [
            attempt(subscription, duration_ms=10),
            attempt(subscription, duration_ms=11),
            attempt(subscription, duration_ms=60_001),
            failed(subscription, status=404, duration_ms=0),
            failed(subscription, status=502, duration_ms=999),
            failed(subscription, status=None, error_class=ErrorClass.TIMEOUT, duration_ms=15_000),
            failed(subscription, status=None, error_class=ErrorClass.DNS, duration_ms=None),
            failed(subscription, status=None, error_class=ErrorClass.BLOCKED_TARGET, duration_ms=None),
        ]
    )
    stats = row(subscription)
    assert (stats.attempts, stats.successes) == (8, 3)
    assert (stats.failed_4xx, stats.failed_5xx, stats.failed_timeout, stats.failed_connection, stats.failed_other) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert stats.duration_ms_total == 10 + 11 + 60_001 + 0 + 999 + 15_000
    latency = {column: getattr(stats, column) for column in LATENCY_COLUMNS if getattr(stats, column)}
    # The bound itself is in its bucket; attempts without a duration are in none.
    assert latency == {
        "latency_le_10": 2,
        "latency_le_25": 1,
        "latency_le_1000": 1,
        "latency_le_30000": 1,
        "latency_over": 1,
    }


def test_each_subscription_and_utc_hour_has_its_row(make_subscription):
    one, two = make_subscription(), make_subscription()
    paris = timezone(timedelta(hours=1))
    attempt_stats.add(
        [
            attempt(one, HOUR - timedelta(microseconds=1)),
            attempt(one, HOUR),
            attempt(one, HOUR + timedelta(minutes=59, seconds=59)),
            attempt(two, datetime(2026, 11, 28, 15, 30, tzinfo=paris)),  # 14:30 UTC
        ]
    )
    assert sorted(AttemptStats.objects.values_list("subscription_id", "hour", "attempts")) == [
        (one.pk, HOUR - timedelta(hours=1), 1),
        (one.pk, HOUR, 2),
        (two.pk, HOUR, 1),
    ]


def test_later_attempts_add_to_the_hour_with_one_update_per_subscription_and_hour(make_subscription):
    one, two = make_subscription(), make_subscription()
    attempt_stats.add([attempt(one), attempt(two)])
    batch = [attempt(one), failed(one, status=500), attempt(two, HOUR + timedelta(minutes=30)), attempt(one)]
    with CaptureQueriesContext(connection) as queries:
        attempt_stats.add(batch)
    assert len(queries) == 2
    assert all(query["sql"].startswith("UPDATE") for query in queries)
    assert (row(one).attempts, row(one).successes, row(one).failed_5xx) == (4, 3, 1)
    assert (row(two).attempts, row(two).successes) == (2, 2)


def test_nothing_to_count_runs_no_query(make_subscription):
    with CaptureQueriesContext(connection) as queries:
        attempt_stats.add([])
    assert len(queries) == 0


def test_deliveries_sent_over_http_are_counted_as_their_attempts(settings, receiver, make_subscription, make_delivery):
    """The production path (lanes -> outcomes.record): the hourly rows equal the attempt rows."""
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "TIMEOUT": 0.5}
    receiver.routes = {
        "/ok": [Reply(200)],
        "/missing": [Reply(404)],
        "/broken": [Reply(503)],
        "/moved": [Reply(302, headers={"Location": "/elsewhere"})],
        "/hangs": [Reply(200, delay=5)],
    }
    expected = {"/ok": 3, "/missing": 2, "/broken": 2, "/moved": 1, "/hangs": 1}
    subscriptions = {path: make_subscription(receiver.url(path)) for path in expected}
    subscriptions["closed"] = make_subscription("http://127.0.0.1:9/closed")  # connection refused
    for path, count in {**expected, "closed": 1}.items():
        for _ in range(count):
            make_delivery(subscriptions[path])
    lanes.deliver_due(time_budget=1)

    assert DeliveryAttempt.objects.count() == 10
    totals = {
        path: AttemptStats.objects.filter(subscription=subscription).values(
            "attempts", "successes", "failed_4xx", "failed_5xx", "failed_timeout", "failed_connection", "failed_other"
        )[0]
        for path, subscription in subscriptions.items()
    }
    assert totals["/ok"] == {**zeros(), "attempts": 3, "successes": 3}
    assert totals["/missing"] == {**zeros(), "attempts": 2, "failed_4xx": 2}
    assert totals["/broken"] == {**zeros(), "attempts": 2, "failed_5xx": 2}
    assert totals["/moved"] == {**zeros(), "attempts": 1, "failed_other": 1}
    assert totals["/hangs"] == {**zeros(), "attempts": 1, "failed_timeout": 1}
    assert totals["closed"] == {**zeros(), "attempts": 1, "failed_connection": 1}
    for stats in AttemptStats.objects.all():
        durations = list(
            DeliveryAttempt.objects.filter(subscription_id=stats.subscription_id).values_list("duration_ms", flat=True)
        )
        assert stats.duration_ms_total == sum(durations)
        for index, bound in enumerate(LATENCY_BOUNDS_MS):
            at_most = sum(getattr(stats, column) for column in LATENCY_COLUMNS[: index + 1])
            assert at_most == sum(1 for d in durations if d <= bound)
        assert stats.hour == DeliveryAttempt.objects.filter(subscription_id=stats.subscription_id).earliest(
            "created_at"
        ).created_at.replace(minute=0, second=0, microsecond=0)


def zeros() -> dict[str, int]:
    return dict.fromkeys(
        ("attempts", "successes", "failed_4xx", "failed_5xx", "failed_timeout", "failed_connection", "failed_other"), 0
    )


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_count_every_attempt_exactly(make_subscription):
    """Workers that all find no row for the hour insert it once; the others add to it."""
    busy, other = make_subscription(), make_subscription()
    workers, batches = 6, 20
    barrier = threading.Barrier(workers)
    errors: list[BaseException] = []

    def record(worker: int) -> None:
        try:
            barrier.wait(timeout=30)
            for n in range(batches):
                hour = HOUR + timedelta(hours=n % 4)
                batch = [attempt(busy, hour), failed(busy, hour, status=500), attempt(other, hour + timedelta(hours=1))]
                if worker % 2:
                    batch.reverse()  # another order in the batch: the rows are still locked in one order
                with transaction.atomic():
                    attempt_stats.add(batch)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=record, args=(worker,)) for worker in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    per_hour = workers * batches // 4
    assert sorted(AttemptStats.objects.filter(subscription=busy).values_list("hour", "attempts", "failed_5xx")) == [
        (HOUR + timedelta(hours=n), 2 * per_hour, per_hour) for n in range(4)
    ]
    assert sorted(AttemptStats.objects.filter(subscription=other).values_list("hour", "attempts")) == [
        (HOUR + timedelta(hours=n + 1), per_hour) for n in range(4)
    ]


# --- rebuild -----------------------------------------------------------------------------------


def stored(subscription, make_delivery, at, **fields) -> DeliveryAttempt:
    """An attempt row as it was stored before these statistics existed (not counted)."""
    fields.setdefault("succeeded", True)
    fields.setdefault("response_status", 200)
    return DeliveryAttempt.objects.create(
        delivery=make_delivery(subscription),
        subscription=subscription,
        attempt_number=1,
        url=subscription.url,
        created_at=at,
        **fields,
    )


def test_rebuild_counts_the_stored_attempts_and_keeps_rows_that_count_more(make_subscription, make_delivery):
    subscription = make_subscription()
    earlier = HOUR - timedelta(hours=1)
    stored(subscription, make_delivery, earlier + timedelta(minutes=5), duration_ms=30)
    stored(
        subscription,
        make_delivery,
        earlier + timedelta(minutes=6),
        succeeded=False,
        response_status=404,
        error_class=ErrorClass.HTTP_STATUS,
        duration_ms=300,
    )
    stored(subscription, make_delivery, HOUR + timedelta(minutes=1))
    # HOUR's row already counts three attempts, two of them since pruned: it is the complete one.
    attempt_stats.add([attempt(subscription), attempt(subscription), attempt(subscription)])
    # The hour of the upgrade: the row counts only the attempt recorded after it.
    upgrade = HOUR + timedelta(hours=1)
    stored(subscription, make_delivery, upgrade + timedelta(minutes=1))
    stored(subscription, make_delivery, upgrade + timedelta(minutes=2))
    attempt_stats.add([attempt(subscription, upgrade + timedelta(minutes=2))])

    result = attempt_stats.rebuild_subscription(subscription.pk, until=HOUR + timedelta(hours=2))

    assert result == attempt_stats.Rebuilt(attempts=5, written=2, kept=1)
    assert (row(subscription, earlier).attempts, row(subscription, earlier).failed_4xx) == (2, 1)
    assert row(subscription, earlier).latency_le_50 == row(subscription, earlier).latency_le_500 == 1
    assert row(subscription, earlier).duration_ms_total == 330
    assert row(subscription, HOUR).attempts == 3
    assert row(subscription, upgrade).attempts == 2
    assert attempt_stats.rebuild_subscription(
        subscription.pk, until=HOUR + timedelta(hours=2)
    ) == attempt_stats.Rebuilt(attempts=5, written=0, kept=3)


def test_rebuild_leaves_hours_from_until_on_alone(make_subscription, make_delivery):
    subscription = make_subscription()
    stored(subscription, make_delivery, HOUR + timedelta(minutes=1))
    assert attempt_stats.rebuild_subscription(subscription.pk, until=HOUR) == attempt_stats.Rebuilt(0, 0, 0)
    assert not AttemptStats.objects.exists()

"""Statistics read from the hourly rows (outcome buckets, dashboard figures, percentiles) and their SVG charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_webhooks import stats
from django_webhooks.delivery import attempt_stats, health
from django_webhooks.models import AttemptStats, DeliveryAttempt, ErrorClass
from django_webhooks.stats import (
    FAILURE_CLASSES,
    LATENCY_BOUNDS_MS,
    HourlyOutcomes,
    histogram_percentile,
    hourly_outcomes,
    latency_chart_svg,
    outcome_buckets,
    outcomes_chart_svg,
    percentile,
    top_failing_subscriptions,
    window_summary,
)

NOW = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)


@pytest.fixture
def attempt(make_subscription):
    """``attempt(subscription=None, at=NOW, succeeded=True, duration_ms=50, status=None)``: one attempt
    counted as ``outcomes.record`` counts it (``attempt_stats.add``)."""
    default = make_subscription("http://127.0.0.1:9/default")

    def add(subscription=None, at=NOW, succeeded=True, duration_ms=50, status=None):
        subscription = subscription or default
        attempt = DeliveryAttempt(
            subscription_id=subscription.pk,
            created_at=at,
            succeeded=succeeded,
            response_status=status or (200 if succeeded else 500),
            error_class="" if succeeded else ErrorClass.HTTP_STATUS,
            duration_ms=duration_ms,
        )
        attempt_stats.add([attempt])
        return attempt

    return add


def histogram(**counts_by_bound: int) -> list[int]:
    """``histogram(le10=3, over=1)``: counts per bucket of LATENCY_BOUNDS_MS (``over``: slower)."""
    buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for bound, count in counts_by_bound.items():
        index = len(LATENCY_BOUNDS_MS) if bound == "over" else LATENCY_BOUNDS_MS.index(int(bound.removeprefix("le")))
        buckets[index] = count
    return buckets


def test_percentile_interpolates_inside_the_bucket():
    # 100 samples in (50, 100]: the median is halfway through that bucket.
    assert histogram_percentile(histogram(le100=100), 0.5) == pytest.approx(75)
    # 90 fast (<= 10 ms) and 10 slow (1000-2500 ms): p50 is fast, p95 is slow.
    mixed = histogram(le10=90, le2500=10)
    assert histogram_percentile(mixed, 0.5) < 10
    assert 1000 < histogram_percentile(mixed, 0.95) <= 2500


def test_percentile_of_samples_interpolates_between_ranks_as_percentile_cont():
    assert percentile([10, 20, 30, 40, 100], 0.5) == 30.0
    assert percentile([10, 20, 30, 40, 100], 0.95) == pytest.approx(40 + (100 - 40) * 0.8)
    assert percentile([7], 0.99) == 7.0
    assert percentile([], 0.5) is None


def test_health_figures_use_these_percentiles():
    assert health.percentile is percentile and health.PercentileCont is stats.PercentileCont


def test_percentile_of_nothing_is_none():
    assert histogram_percentile(histogram(), 0.5) is None


def test_percentile_beyond_the_last_bound():
    slow = [0] * len(LATENCY_BOUNDS_MS) + [4]
    assert histogram_percentile(slow, 0.99) > LATENCY_BOUNDS_MS[-1]


@pytest.mark.django_db
def test_hourly_outcomes_count_each_hour_and_skip_the_rest(attempt):
    attempt(at=NOW - timedelta(minutes=10))
    attempt(at=NOW - timedelta(minutes=20), succeeded=False, duration_ms=900)
    attempt(at=NOW - timedelta(hours=3, minutes=5))
    attempt(at=NOW - timedelta(hours=30))  # outside 24 h
    attempt(at=NOW + timedelta(hours=1))  # after "now"'s hour
    buckets = hourly_outcomes(24, now=NOW)
    assert len(buckets) == 24
    assert buckets[-1].start == datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert buckets[0].start == datetime(2026, 11, 27, 15, tzinfo=UTC)
    assert (buckets[-1].succeeded, buckets[-1].failed) == (1, 1)
    assert buckets[-4].start.hour == 11 and buckets[-4].succeeded == 1
    assert sum(b.total for b in buckets) == 3
    assert 500 < buckets[-1].percentile(0.99) <= 1000


@pytest.mark.django_db
def test_seven_day_window_has_an_hour_per_bucket(attempt):
    attempt(at=NOW - timedelta(hours=30))
    buckets = hourly_outcomes(24 * 7, now=NOW)
    assert len(buckets) == 168
    assert sum(b.total for b in buckets) == 1


@pytest.mark.django_db
def test_attempts_without_a_duration_count_but_have_no_latency(attempt):
    attempt(at=NOW - timedelta(minutes=1), succeeded=False, duration_ms=None)
    [bucket] = [b for b in hourly_outcomes(24, now=NOW) if b.total]
    assert bucket.failed == 1
    assert bucket.percentile(0.5) is None


@pytest.mark.django_db
def test_outcome_buckets_by_hour(make_subscription, attempt):
    watched, other = make_subscription(), make_subscription()
    attempt(watched, at=NOW - timedelta(hours=2, minutes=10), duration_ms=20)
    attempt(watched, at=NOW - timedelta(hours=2, minutes=20), succeeded=False, status=404, duration_ms=300)
    attempt(watched, at=NOW - timedelta(minutes=1), succeeded=False, status=503)
    attempt(watched, at=NOW - timedelta(hours=5))  # before the window
    attempt(other, at=NOW - timedelta(minutes=1))
    since = NOW - timedelta(hours=3)  # 11:30: the buckets start at 11:00
    buckets = outcome_buckets(AttemptStats.objects.filter(subscription=watched), since, NOW)
    assert [b.start for b in buckets] == [datetime(2026, 11, 28, hour, tzinfo=UTC) for hour in (11, 12, 13, 14)]
    assert [(b.succeeded, b.failed) for b in buckets] == [(0, 0), (1, 1), (0, 0), (0, 1)]
    assert buckets[1].failures == {"4xx": 1, "5xx": 0, "timeout": 0, "connection": 0, "other": 0}
    assert buckets[3].failures["5xx"] == 1
    assert buckets[1].histogram == histogram(le25=1, le500=1)
    assert buckets[1].mean_ms == 160
    assert 250 < buckets[1].percentile(0.99) <= 500
    assert buckets[0].percentile(0.5) is None and buckets[0].mean_ms is None
    assert sum(b.total for b in outcome_buckets(AttemptStats.objects.all(), since, NOW)) == 4


@pytest.mark.django_db
def test_outcome_buckets_by_utc_day(attempt):
    attempt(at=datetime(2026, 11, 26, 23, 59, tzinfo=UTC), duration_ms=5)
    attempt(at=datetime(2026, 11, 27, 0, 0, tzinfo=UTC), duration_ms=5)
    attempt(at=datetime(2026, 11, 27, 23, 30, tzinfo=UTC), succeeded=False, duration_ms=70_000)
    attempt(at=NOW - timedelta(minutes=5), duration_ms=None)
    buckets = outcome_buckets(AttemptStats.objects.all(), NOW - timedelta(days=2), NOW, bucket="day")
    assert [b.start for b in buckets] == [datetime(2026, 11, day, tzinfo=UTC) for day in (26, 27, 28)]
    assert [(b.succeeded, b.failed) for b in buckets] == [(1, 0), (1, 1), (1, 0)]
    assert buckets[1].histogram == histogram(le10=1, over=1)
    assert buckets[1].failures["5xx"] == 1
    assert buckets[2].histogram == histogram()


@pytest.mark.django_db
def test_outcome_buckets_is_one_query(attempt):
    for hours in range(0, 24 * 30, 7):
        attempt(at=NOW - timedelta(hours=hours))
    for bucket in ("hour", "day"):
        with CaptureQueriesContext(connection) as queries:
            buckets = outcome_buckets(AttemptStats.objects.all(), NOW - timedelta(days=30), NOW, bucket)
        assert len(queries) == 1
        assert sum(b.total for b in buckets) == len(range(0, 24 * 30, 7))
    assert len(outcome_buckets(AttemptStats.objects.all(), NOW - timedelta(days=30), NOW, "day")) == 31


def test_outcome_buckets_of_an_empty_window_and_a_wrong_bucket():
    assert outcome_buckets(AttemptStats.objects.all(), NOW, NOW) == []
    assert outcome_buckets(AttemptStats.objects.all(), NOW, NOW - timedelta(days=1)) == []
    with pytest.raises(ValueError, match="hour, day"):
        outcome_buckets(AttemptStats.objects.all(), NOW - timedelta(days=1), NOW, "week")


def test_an_hour_bucket_has_every_failure_class():
    assert list(HourlyOutcomes(NOW).failures) == list(FAILURE_CLASSES)


@pytest.mark.django_db
def test_window_charts_of_hourly_and_daily_windows_read_one_query_per_bucket_size(attempt):
    attempt(at=NOW - timedelta(minutes=10))
    attempt(at=NOW - timedelta(hours=30), succeeded=False)
    attempt(at=NOW - timedelta(days=29, hours=14))  # 00:30 on the first of the 30 days
    attempt(at=NOW - timedelta(days=30))  # the day before
    windows = (
        stats.ChartWindow("6h", "last 6 hours", 6),
        stats.ChartWindow("2d", "last 2 days", 48),
        stats.ChartWindow("30d", "last 30 days", 30, "day"),
    )
    with CaptureQueriesContext(connection) as queries:
        charts = stats.window_charts(
            None, NOW, outcomes_title="Attempts, %(window)s", latency_title="Latency, %(window)s", windows=windows
        )
    assert len(queries) == 2
    assert [(c["key"], c["hours"], c["summary"]["attempts"]) for c in charts] == [
        ("6h", 6, 1),
        ("2d", 48, 2),
        ("30d", 720, 3),
    ]
    assert charts[1]["summary"]["failed"] == 1
    assert "Attempts, last 30 days" in charts[2]["outcomes_svg"] and "Latency, last 30 days" in charts[2]["latency_svg"]
    with CaptureQueriesContext(connection) as queries:
        default = stats.window_charts(None, NOW, outcomes_title="%(window)s", latency_title="%(window)s")
    assert len(queries) == 1
    assert [(c["key"], c["label"], c["summary"]["attempts"]) for c in default] == [
        ("24h", "last 24 hours", 1),
        ("7d", "last 7 days", 2),
    ]


def test_window_summary():
    start = NOW.replace(minute=0)
    buckets = [
        HourlyOutcomes(start, succeeded=3, failed=1, histogram=histogram(le10=4)),
        HourlyOutcomes(start + timedelta(hours=1), succeeded=5, failed=1, histogram=histogram(le100=6)),
    ]
    buckets[0].failures["4xx"] = buckets[1].failures["timeout"] = 1
    summary = window_summary(buckets)
    assert summary["attempts"] == 10 and summary["succeeded"] == 8 and summary["failed"] == 2
    assert summary["failures"] == {"4xx": 1, "5xx": 0, "timeout": 1, "connection": 0, "other": 0}
    assert summary["success_rate"] == pytest.approx(0.8)
    assert 50 < summary["p50_ms"] <= 100
    assert window_summary([])["p95_ms"] is None


@pytest.mark.django_db
def test_top_failing_subscriptions(make_subscription, attempt):
    flaky = make_subscription("http://127.0.0.1:9/flaky")
    down = make_subscription("http://127.0.0.1:9/down")
    fine = make_subscription("http://127.0.0.1:9/fine")
    for n in range(3):
        attempt(down, at=NOW - timedelta(minutes=n + 1), succeeded=False)
    attempt(flaky, at=NOW - timedelta(minutes=1), succeeded=False)
    attempt(flaky, at=NOW - timedelta(minutes=2))
    attempt(fine, at=NOW - timedelta(minutes=1))
    attempt(fine, at=NOW - timedelta(days=2), succeeded=False)
    rows = top_failing_subscriptions(24, now=NOW)
    assert [row["subscription"] for row in rows] == [down, flaky]
    assert (rows[0]["failed"], rows[0]["attempts"], rows[0]["success_rate"]) == (3, 3, 0)
    assert rows[1]["success_rate"] == pytest.approx(0.5)
    assert [row["subscription"] for row in top_failing_subscriptions(24 * 7, now=NOW)] == [down, flaky, fine]
    assert len(top_failing_subscriptions(24, limit=1, now=NOW)) == 1


def test_outcomes_chart_stacks_succeeded_and_failed_bars():
    start = NOW.replace(minute=0)
    buckets = [HourlyOutcomes(start + timedelta(hours=n)) for n in range(24)]
    buckets[5].succeeded, buckets[5].failed = 8, 2
    buckets[6].succeeded = 4
    svg = str(outcomes_chart_svg(buckets, "Attempts <last 24 hours>"))
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "Attempts &lt;last 24 hours&gt;" in svg and "<last" not in svg
    bars = re.findall(r'<rect x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" fill="(#\w+)"/>', svg)
    heights = {
        color: [float(h) for h, c in bars if c == color] for color in (stats.SUCCEEDED_COLOR, stats.FAILED_COLOR)
    }
    assert len(heights[stats.SUCCEEDED_COLOR]) == 2 and len(heights[stats.FAILED_COLOR]) == 1
    assert heights[stats.SUCCEEDED_COLOR][0] == pytest.approx(4 * heights[stats.FAILED_COLOR][0])
    assert "8 succeeded, 2 failed" in svg


def test_latency_chart_draws_one_line_per_percentile_and_breaks_at_gaps():
    start = NOW.replace(minute=0)
    buckets = [HourlyOutcomes(start + timedelta(hours=n)) for n in range(6)]
    for n in (0, 1, 3, 4):
        buckets[n].histogram = histogram(le100=10, le1000=1)
    svg = str(latency_chart_svg(buckets, "Latency"))
    for series in ("p50", "p95", "p99"):
        assert svg.count(f'data-series="{series}"') == 2  # two segments around the empty hour
    assert svg.count("<polyline") == 6


def test_charts_of_an_empty_window():
    buckets = [HourlyOutcomes(NOW.replace(minute=0) - timedelta(hours=n)) for n in range(3)]
    assert "<polyline" not in str(latency_chart_svg(buckets, "Latency"))
    assert "<rect x" not in str(outcomes_chart_svg(buckets, "Attempts"))

"""Dashboard figures (hourly outcomes, latency percentiles, top failing) and their SVG charts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from django_webhooks import stats
from django_webhooks.delivery import health
from django_webhooks.models import DeliveryAttempt
from django_webhooks.stats import (
    LATENCY_BOUNDS_MS,
    HourlyOutcomes,
    histogram_percentile,
    hourly_outcomes,
    latency_chart_svg,
    outcomes_chart_svg,
    percentile,
    top_failing_subscriptions,
    window_summary,
)

NOW = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)


@pytest.fixture
def attempt(make_subscription, make_delivery):
    """``attempt(subscription=None, at=NOW, succeeded=True, duration_ms=50)``: one recorded attempt."""
    default = make_subscription("http://127.0.0.1:9/default")

    def add(subscription=None, at=NOW, succeeded=True, duration_ms=50):
        subscription = subscription or default
        delivery = make_delivery(subscription)
        return DeliveryAttempt.objects.create(
            delivery=delivery,
            subscription=subscription,
            attempt_number=1,
            url=subscription.url,
            created_at=at,
            succeeded=succeeded,
            response_status=200 if succeeded else 500,
            duration_ms=duration_ms,
        )

    return add


def histogram(**counts_by_bound: int) -> list[int]:
    buckets = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    for bound, count in counts_by_bound.items():
        buckets[LATENCY_BOUNDS_MS.index(int(bound.removeprefix("le")))] = count
    return buckets


def test_percentile_interpolates_inside_the_bucket():
    # 100 samples in (50, 75]: the median is halfway through that bucket.
    assert histogram_percentile(histogram(le75=100), 0.5) == pytest.approx(62.5)
    # 90 fast (<= 5 ms) and 10 slow (1000-1500 ms): p50 is fast, p95 is slow.
    mixed = histogram(le5=90, le1500=10)
    assert histogram_percentile(mixed, 0.5) < 5
    assert 1000 < histogram_percentile(mixed, 0.95) <= 1500


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
    attempt(at=NOW + timedelta(minutes=5))  # after "now"
    buckets = hourly_outcomes(24, now=NOW)
    assert len(buckets) == 24
    assert buckets[-1].start == datetime(2026, 11, 28, 14, tzinfo=UTC)
    assert buckets[0].start == datetime(2026, 11, 27, 15, tzinfo=UTC)
    assert (buckets[-1].succeeded, buckets[-1].failed) == (1, 1)
    assert buckets[-4].start.hour == 11 and buckets[-4].succeeded == 1
    assert sum(b.total for b in buckets) == 3
    assert 750 < buckets[-1].percentile(0.99) <= 1000


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


def test_window_summary():
    start = NOW.replace(minute=0)
    buckets = [
        HourlyOutcomes(start, succeeded=3, failed=1, histogram=histogram(le10=4)),
        HourlyOutcomes(start + timedelta(hours=1), succeeded=5, failed=1, histogram=histogram(le100=6)),
    ]
    summary = window_summary(buckets)
    assert summary["attempts"] == 10 and summary["succeeded"] == 8 and summary["failed"] == 2
    assert summary["success_rate"] == pytest.approx(0.8)
    assert 75 < summary["p50_ms"] <= 100
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

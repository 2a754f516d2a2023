"""Latency percentiles, the figures of the admin dashboard and their SVG charts (no JavaScript, no CDN).

Percentiles are computed here only, two ways for two kinds of input:

* from the durations themselves (:func:`percentile`, and :class:`PercentileCont` in PostgreSQL,
  which interpolate alike): a subscription's health figures (:mod:`django_webhooks.delivery.health`);
* from a latency histogram (:func:`histogram_percentile`, interpolated inside a bucket of
  :data:`LATENCY_BOUNDS_MS`): the dashboard, whose figures cover every attempt of a window.

Per-endpoint figures (the stats API, the subscription page's chart, the dashboard) are read from
:class:`~django_webhooks.models.AttemptStats`, the hourly counts written as attempts are recorded
(:mod:`django_webhooks.delivery.attempt_stats`), never from the attempts table:
:func:`outcome_buckets` sums the rows of a window per UTC hour or day in one grouped query, so the
cost follows the hours asked for, not the millions of attempts behind them, works the same on
every database, and survives the pruning of the attempts.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from django.db.models import Aggregate, F, FloatField, QuerySet, Sum
from django.db.models.functions import TruncDay
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, gettext_lazy

from .models import AttemptStats, Subscription
from .owners import get_owners

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

#: Upper bounds (ms) of the latency histogram's buckets; one more bucket holds everything slower.
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
#: What a failed attempt counts as (the keys of :attr:`HourlyOutcomes.failures`), and the
#: :class:`~django_webhooks.models.AttemptStats` column of each; which attempt is which is decided
#: by :func:`django_webhooks.delivery.attempt_stats.failure_class`.
FAILURE_CLASSES = ("4xx", "5xx", "timeout", "connection", "other")
FAILURE_COLUMNS = {name: f"failed_{name}" for name in FAILURE_CLASSES}
#: The ``AttemptStats`` columns of the latency histogram, in the order of :data:`LATENCY_BOUNDS_MS`
#: (then the one for slower attempts).
LATENCY_COLUMNS = (*(f"latency_le_{bound}" for bound in LATENCY_BOUNDS_MS), "latency_over")
#: Every counter column of ``AttemptStats``.
COUNTER_COLUMNS = ("attempts", "successes", *FAILURE_COLUMNS.values(), "duration_ms_total", *LATENCY_COLUMNS)


def latency_bucket(duration_ms: int) -> int:
    """The index in :data:`LATENCY_COLUMNS` (and in a histogram) of a ``duration_ms`` latency: the
    first bound it does not exceed, or the last bucket for anything slower."""
    return bisect_left(LATENCY_BOUNDS_MS, duration_ms)


BUCKET_SIZES = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
SUCCEEDED_COLOR = "#2da44e"
FAILED_COLOR = "#cf222e"
PERCENTILE_COLORS = {"p50": "#0969da", "p95": "#bf8700", "p99": "#8250df"}


# --- percentiles -------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], fraction: float) -> float | None:
    """The ``fraction`` quantile of ``sorted_values``, interpolated linearly between the closest
    ranks, as PostgreSQL's ``percentile_cont`` (:class:`PercentileCont`) computes it; None when empty."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower = int(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    return float(sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * (position - lower))


class PercentileCont(Aggregate):
    """PostgreSQL's ``percentile_cont(fraction) WITHIN GROUP (ORDER BY expression)``: :func:`percentile`
    computed by the database."""

    function = "percentile_cont"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


@dataclass
class HourlyOutcomes:
    """One bucket (a UTC hour or day) of attempts: how many succeeded or failed, how, and their latency."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    #: Latency counts per bucket of :data:`LATENCY_BOUNDS_MS`, then one for slower attempts;
    #: attempts without a duration are in none.
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))
    #: Failed attempts by :data:`FAILURE_CLASSES`.
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FAILURE_CLASSES, 0))
    #: Sum of the durations of the attempts in :attr:`histogram`.
    duration_ms_total: int = 0

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    def percentile(self, fraction: float) -> float | None:
        return histogram_percentile(self.histogram, fraction)

    @property
    def mean_ms(self) -> float | None:
        """Mean latency of the attempts with a duration; None when there are none."""
        timed = sum(self.histogram)
        return self.duration_ms_total / timed if timed else None


def histogram_percentile(histogram: list[int], fraction: float) -> float | None:
    """The ``fraction`` quantile of a latency histogram (counts per bucket of :data:`LATENCY_BOUNDS_MS`,
    then one for slower ones), interpolated linearly inside its bucket; None when empty."""
    samples = sum(histogram)
    if not samples:
        return None
    rank = fraction * samples
    seen = 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            lower = LATENCY_BOUNDS_MS[index - 1] if index else 0
            upper = LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else LATENCY_BOUNDS_MS[-1] * 2
            return lower + (upper - lower) * max(rank - seen, 0) / count
        seen += count
    return float(LATENCY_BOUNDS_MS[-1] * 2)


def bucket_start(moment: datetime, bucket: str = "hour") -> datetime:
    """The start of the UTC hour (or day) that ``moment`` falls in."""
    start = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return start.replace(hour=0) if bucket == "day" else start


def outcome_buckets(
    stats: QuerySet[AttemptStats], since: datetime, until: datetime, bucket: str = "hour"
) -> list[HourlyOutcomes]:
    """The attempts counted in ``stats`` from ``since`` to ``until``, one :class:`HourlyOutcomes` per
    UTC hour or day (``bucket``), oldest first, empty buckets included.

    ``since`` and ``until`` are aware datetimes. Buckets are whole: the first is the one ``since``
    falls in, the last the one holding the instant just before ``until`` (an hour or day that has
    begun is counted as far as it has gone); ``[]`` when ``until`` is not after ``since``. ``stats`` is any
    filter of ``AttemptStats`` (one subscription, an owner's, all). One query, grouped in the
    database, whose cost depends on the rows of the window, never on the attempts table. The
    caller bounds the window (a year of hours is 8,760 buckets); ``ValueError`` for another
    ``bucket`` than ``"hour"`` or ``"day"``.
    """
    if bucket not in BUCKET_SIZES:
        raise ValueError(f"bucket must be one of {', '.join(BUCKET_SIZES)}, not {bucket!r}")
    if until <= since:
        return []
    size = BUCKET_SIZES[bucket]
    first = bucket_start(since, bucket)
    buckets: dict[datetime, HourlyOutcomes] = {}
    start = first
    while start < until:
        buckets[start] = HourlyOutcomes(start)
        start += size
    grouped = stats.filter(hour__gte=first, hour__lt=until).order_by()
    if bucket == "day":
        grouped = grouped.annotate(bucket_start=TruncDay("hour", tzinfo=UTC))
    else:
        grouped = grouped.annotate(bucket_start=F("hour"))
    rows = grouped.values("bucket_start").annotate(**{f"sum_{column}": Sum(column) for column in COUNTER_COLUMNS})
    for row in rows:
        found = buckets.get(bucket_start(row["bucket_start"], bucket))
        if found is not None:
            _add_row(found, row)
    return list(buckets.values())


def _add_row(bucket: HourlyOutcomes, row: dict[str, Any]) -> None:
    """Add one grouped ``AttemptStats`` row (its ``sum_<column>`` values) to ``bucket``."""
    attempts = int(row["sum_attempts"] or 0)
    successes = int(row["sum_successes"] or 0)
    bucket.succeeded += successes
    bucket.failed += attempts - successes
    for name, column in FAILURE_COLUMNS.items():
        bucket.failures[name] += int(row[f"sum_{column}"] or 0)
    for index, column in enumerate(LATENCY_COLUMNS):
        bucket.histogram[index] += int(row[f"sum_{column}"] or 0)
    bucket.duration_ms_total += int(row["sum_duration_ms_total"] or 0)


def hourly_outcomes(
    hours: int = 24, now: datetime | None = None, stats: QuerySet[AttemptStats] | None = None
) -> list[HourlyOutcomes]:
    """One :class:`HourlyOutcomes` per UTC hour of the last ``hours`` (oldest first, empty hours
    included), from ``stats`` (default: every subscription's)."""
    now = now or timezone.now()
    since = bucket_start(now) - timedelta(hours=hours - 1)
    return outcome_buckets(AttemptStats.objects.all() if stats is None else stats, since, now)


def window_summary(buckets: list[HourlyOutcomes]) -> dict[str, Any]:
    """Totals of a window: attempts, succeeded, failed (and by class), success rate and latency percentiles."""
    histogram = [sum(counts) for counts in zip(*(b.histogram for b in buckets), strict=True)] if buckets else []
    succeeded = sum(b.succeeded for b in buckets)
    failed = sum(b.failed for b in buckets)
    total = succeeded + failed
    summary: dict[str, Any] = {
        "attempts": total,
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": (succeeded / total) if total else None,
        "failures": {name: sum(b.failures[name] for b in buckets) for name in FAILURE_CLASSES},
    }
    for name, fraction in PERCENTILES:
        summary[f"{name}_ms"] = histogram_percentile(histogram, fraction) if histogram else None
    return summary


def top_failing_subscriptions(
    hours: int = 24, limit: int = 10, now: datetime | None = None, stats: QuerySet[AttemptStats] | None = None
) -> list[dict[str, Any]]:
    """Subscriptions with the most failed attempts in the UTC hours of the last ``hours`` (those of
    :func:`hourly_outcomes`), most failures first, from ``stats`` (default: every subscription's);
    each with its owner instance (None when staff-managed or gone)."""
    now = now or timezone.now()
    since = bucket_start(now) - timedelta(hours=hours - 1)
    stats = AttemptStats.objects.all() if stats is None else stats
    rows = list(
        stats.filter(hour__gte=since, hour__lte=now)
        .values("subscription_id")
        .annotate(attempt_count=Sum("attempts"), failed_count=Sum("attempts") - Sum("successes"))
        .filter(failed_count__gt=0)
        .order_by("-failed_count", "subscription_id")[:limit]
    )
    subscriptions = Subscription.objects.in_bulk([row["subscription_id"] for row in rows])
    owners = get_owners(subscription.owner_id for subscription in subscriptions.values())
    result = []
    for row in rows:
        subscription = subscriptions.get(row["subscription_id"])
        if subscription is None:
            continue
        attempts, failed = int(row["attempt_count"]), int(row["failed_count"])
        result.append(
            {
                "subscription": subscription,
                "owner": owners.get(subscription.owner_id) if subscription.owner_id is not None else None,
                "failed": failed,
                "attempts": attempts,
                "success_rate": (attempts - failed) / attempts,
                "circuit_open": subscription.circuit_is_open(now),
            }
        )
    return result


# --- SVG -------------------------------------------------------------------------------------

WIDTH, HEIGHT = 880, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 28, 30


def _axis_max(value: float, *, whole: bool) -> float:
    """The top of a y axis with four gridline steps of 1, 2, 2.5 or 5 times a power of ten."""
    needed = max(value, 1.0 if whole else 0.0) / 4
    if needed <= 0:
        return 4.0
    magnitude = 10 ** math.floor(math.log10(needed))
    steps = (1, 2, 5, 10) if whole else (1, 2, 2.5, 5, 10)
    step = next(s * magnitude for s in steps if needed <= s * magnitude)
    if whole:
        step = max(math.ceil(step), 1)
    return 4 * step


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:g}"


def _daily(buckets: list[HourlyOutcomes]) -> bool:
    return len(buckets) > 1 and buckets[1].start - buckets[0].start >= BUCKET_SIZES["day"]


def _axis_label(start: datetime, index: int, buckets: list[HourlyOutcomes]) -> str | None:
    if _daily(buckets):
        every = max(len(buckets) // 10, 1)
        return start.astimezone(UTC).strftime("%b %d") if index % every == 0 else None
    local = timezone.localtime(start)
    if len(buckets) <= 48:
        return local.strftime("%H:%M") if local.hour % 3 == 0 else None
    return local.strftime("%a %d") if local.hour == 0 else None


def _bucket_when(start: datetime, buckets: list[HourlyOutcomes]) -> str:
    if _daily(buckets):
        return start.astimezone(UTC).strftime("%Y-%m-%d")
    return timezone.localtime(start).strftime("%Y-%m-%d %H:%M")


def _frame(title: str, y_max: float, unit: str, buckets: list[HourlyOutcomes]) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg class="dwh-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'role="img" aria-label="{escape(title)}" font-family="sans-serif" font-size="11">',
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):
        value = y_max * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d0d7de" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#57606a">{_number(value)}{escape(unit)}</text>'
        )
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    for index, bucket in enumerate(buckets):
        label = _axis_label(bucket.start, index, buckets)
        if label:
            x = LEFT + slot * index
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}" stroke="#57606a"/>'
            )
            parts.append(
                f'<text x="{x:.1f}" y="{HEIGHT - 10}" text-anchor="middle" fill="#57606a">{escape(label)}</text>'
            )
    return parts


def _legend(items: list[tuple[str, str]]) -> list[str]:
    parts = []
    x = LEFT
    for label, color in items:
        parts.append(f'<rect class="legend" x="{x}" y="8" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{x + 14}" y="17" fill="#24292f">{escape(label)}</text>')
        x += 24 + 7 * len(label)
    return parts


def outcomes_chart_svg(buckets: list[HourlyOutcomes], title: str) -> SafeString:
    """Stacked bars per hour: succeeded attempts below, failed ones above."""
    y_max = _axis_max(max((b.total for b in buckets), default=0), whole=True)
    parts = _frame(title, y_max, "", buckets)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    bar_w = max(slot * 0.8, 1)
    for index, bucket in enumerate(buckets):
        x = LEFT + slot * index + (slot - bar_w) / 2
        base: float = TOP + plot_h
        tip = gettext("%(when)s: %(succeeded)d succeeded, %(failed)d failed") % {
            "when": _bucket_when(bucket.start, buckets),
            "succeeded": bucket.succeeded,
            "failed": bucket.failed,
        }
        classes = ", ".join(f"{name} {count}" for name, count in bucket.failures.items() if count)
        if classes:
            tip += f" ({classes})"
        tip = escape(tip)
        parts.append(f"<g><title>{tip}</title>")
        for count, color in ((bucket.succeeded, SUCCEEDED_COLOR), (bucket.failed, FAILED_COLOR)):
            if count:
                height = plot_h * count / y_max
                base -= height
                parts.append(
                    f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar_w:.1f}" height="{height:.1f}" fill="{color}"/>'
                )
        parts.append("</g>")
    parts += _legend([(gettext("succeeded"), SUCCEEDED_COLOR), (gettext("failed"), FAILED_COLOR)])
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every interpolated text is escaped above)


def latency_chart_svg(buckets: list[HourlyOutcomes], title: str) -> SafeString:
    """One line per percentile (p50, p95, p99) of each hour's attempt latency, in milliseconds."""
    series = {name: [b.percentile(fraction) for b in buckets] for name, fraction in PERCENTILES}
    y_max = _axis_max(max((v for values in series.values() for v in values if v is not None), default=0), whole=False)
    parts = _frame(title, y_max, " ms", buckets)
    plot_h = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(buckets), 1)
    for name, values in series.items():
        segments: list[list[str]] = [[]]
        for index, value in enumerate(values):
            if value is None:
                segments.append([])
                continue
            x = LEFT + slot * index + slot / 2
            y = TOP + plot_h - plot_h * value / y_max
            segments[-1].append(f"{x:.1f},{y:.1f}")
        for points in segments:
            if len(points) == 1:
                cx, cy = points[0].split(",")
                parts.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{PERCENTILE_COLORS[name]}"/>')
            elif points:
                parts.append(
                    f'<polyline points="{" ".join(points)}" fill="none" stroke="{PERCENTILE_COLORS[name]}" '
                    f'stroke-width="2" data-series="{name}"/>'
                )
    parts += _legend([(name, PERCENTILE_COLORS[name]) for name, _fraction in PERCENTILES])
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308  (every interpolated text is escaped above)


class ChartWindow(NamedTuple):
    """A window of :func:`window_charts`: the last ``buckets`` UTC hours or days (``bucket``), up to now."""

    key: str
    label: StrOrPromise
    buckets: int
    bucket: str = "hour"

    @property
    def hours(self) -> int:
        return self.buckets * BUCKET_SIZES[self.bucket] // timedelta(hours=1)


LAST_24_HOURS = ChartWindow("24h", gettext_lazy("last 24 hours"), 24)
#: The windows the dashboard and the subscription page chart: the last 24 hours and 7 days, by hour.
CHART_WINDOWS = (LAST_24_HOURS, ChartWindow("7d", gettext_lazy("last 7 days"), 24 * 7))


def window_charts(
    stats: QuerySet[AttemptStats] | None,
    now: datetime,
    *,
    outcomes_title: str,
    latency_title: str,
    windows: Sequence[ChartWindow] = CHART_WINDOWS,
) -> list[dict[str, Any]]:
    """Summary and charts of each of ``windows`` (default :data:`CHART_WINDOWS`) from ``stats``
    (default: every subscription's); each title has a ``%(window)s`` placeholder.

    One query per bucket size, of the longest window's rows: the shorter windows of that size
    are its last buckets."""
    stats = AttemptStats.objects.all() if stats is None else stats
    longest: dict[str, list[HourlyOutcomes]] = {}
    for bucket in dict.fromkeys(window.bucket for window in windows):
        count = max(window.buckets for window in windows if window.bucket == bucket)
        since = bucket_start(now, bucket) - BUCKET_SIZES[bucket] * (count - 1)
        longest[bucket] = outcome_buckets(stats, since, now, bucket)
    charts = []
    for window in windows:
        buckets, label = longest[window.bucket][-window.buckets :], str(window.label)
        charts.append(
            {
                "key": window.key,
                "label": label,
                "hours": window.hours,
                "summary": window_summary(buckets),
                "outcomes_svg": outcomes_chart_svg(buckets, outcomes_title % {"window": label}),
                "latency_svg": latency_chart_svg(buckets, latency_title % {"window": label}),
            }
        )
    return charts


def dashboard_context(now: datetime | None = None, stats: QuerySet[AttemptStats] | None = None) -> dict[str, Any]:
    """Charts and tables of the dashboard for the last 24 hours and the last 7 days, from ``stats``
    (default: every subscription's; the dashboard's filters narrow it)."""
    now = now or timezone.now()
    windows = window_charts(
        stats,
        now,
        outcomes_title=gettext("Delivery attempts per hour, %(window)s"),
        latency_title=gettext("Latency percentiles per hour, %(window)s"),
    )
    for window in windows:
        window["top_failing"] = top_failing_subscriptions(window["hours"], now=now, stats=stats)
    return {"windows": windows, "generated_at": now}

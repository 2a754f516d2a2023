"""Latency percentiles, the figures of the admin dashboard and their SVG charts (no JavaScript, no CDN).

Percentiles are computed here only, two ways for two kinds of input:

* from the durations themselves (:func:`percentile`, and :class:`PercentileCont` in PostgreSQL,
  which interpolate alike): a subscription's health figures (:mod:`django_webhooks.delivery.health`);
* from a latency histogram (:func:`histogram_percentile`, interpolated inside a bucket of
  :data:`LATENCY_BOUNDS_MS`): the dashboard, whose figures cover every attempt of a window.

The dashboard reads ``DeliveryAttempt`` through its ``created_at`` index, grouped in the
database: one query per window gives, for every hour, the succeeded and failed attempts and a
latency histogram, so the work stays proportional to the window, not to the table, and works the
same on every database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Aggregate, Case, Count, FloatField, IntegerField, Q, Value, When
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext

from .models import DeliveryAttempt, Subscription

#: Upper bounds (ms) of the latency histogram's buckets; one more bucket holds everything slower.
LATENCY_BOUNDS_MS = (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
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
    """Attempts that started in one hour: how many succeeded or failed, and their latency."""

    start: datetime
    succeeded: int = 0
    failed: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_MS) + 1))

    @property
    def total(self) -> int:
        return self.succeeded + self.failed

    def percentile(self, fraction: float) -> float | None:
        return histogram_percentile(self.histogram, fraction)


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


def _latency_bucket() -> Case:
    whens = [When(duration_ms__isnull=True, then=Value(-1))]
    whens += [When(duration_ms__lte=bound, then=Value(index)) for index, bound in enumerate(LATENCY_BOUNDS_MS)]
    return Case(*whens, default=Value(len(LATENCY_BOUNDS_MS)), output_field=IntegerField())


def hourly_outcomes(hours: int = 24, now: datetime | None = None) -> list[HourlyOutcomes]:
    """One :class:`HourlyOutcomes` per hour of the last ``hours`` (oldest first, empty hours included)."""
    now = now or timezone.now()
    tz = timezone.get_current_timezone()
    end = timezone.localtime(now, tz).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=hours - 1)
    rows = (
        DeliveryAttempt.objects.filter(created_at__gte=start, created_at__lte=now)
        .annotate(hour=TruncHour("created_at", tzinfo=tz), latency_bucket=_latency_bucket())
        .values("hour", "latency_bucket")
        .annotate(
            succeeded_count=Count("id", filter=Q(succeeded=True)), failed_count=Count("id", filter=Q(succeeded=False))
        )
        .order_by()
    )
    by_hour = {start + timedelta(hours=n): HourlyOutcomes(start + timedelta(hours=n)) for n in range(hours)}
    for row in rows:
        bucket = by_hour.get(row["hour"])
        if bucket is None:
            continue
        bucket.succeeded += row["succeeded_count"]
        bucket.failed += row["failed_count"]
        if row["latency_bucket"] >= 0:
            bucket.histogram[row["latency_bucket"]] += row["succeeded_count"] + row["failed_count"]
    return list(by_hour.values())


def window_summary(buckets: list[HourlyOutcomes]) -> dict[str, Any]:
    """Totals of a window: attempts, succeeded, failed, success rate and latency percentiles."""
    histogram = [sum(counts) for counts in zip(*(b.histogram for b in buckets), strict=True)] if buckets else []
    succeeded = sum(b.succeeded for b in buckets)
    failed = sum(b.failed for b in buckets)
    total = succeeded + failed
    summary: dict[str, Any] = {
        "attempts": total,
        "succeeded": succeeded,
        "failed": failed,
        "success_rate": (succeeded / total) if total else None,
    }
    for name, fraction in PERCENTILES:
        summary[f"{name}_ms"] = histogram_percentile(histogram, fraction) if histogram else None
    return summary


def top_failing_subscriptions(hours: int = 24, limit: int = 10, now: datetime | None = None) -> list[dict[str, Any]]:
    """Subscriptions with the most failed attempts in the last ``hours``, most failures first."""
    now = now or timezone.now()
    rows = list(
        DeliveryAttempt.objects.filter(created_at__gte=now - timedelta(hours=hours), created_at__lte=now)
        .values("subscription_id")
        .annotate(failed_count=Count("id", filter=Q(succeeded=False)), attempt_count=Count("id"))
        .filter(failed_count__gt=0)
        .order_by("-failed_count", "subscription_id")[:limit]
    )
    subscriptions = Subscription.objects.in_bulk([row["subscription_id"] for row in rows])
    result = []
    for row in rows:
        subscription = subscriptions.get(row["subscription_id"])
        if subscription is None:
            continue
        result.append(
            {
                "subscription": subscription,
                "failed": row["failed_count"],
                "attempts": row["attempt_count"],
                "success_rate": (row["attempt_count"] - row["failed_count"]) / row["attempt_count"],
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


def _hour_label(start: datetime, hours: int) -> str | None:
    local = timezone.localtime(start)
    if hours <= 48:
        return local.strftime("%H:%M") if local.hour % 3 == 0 else None
    return local.strftime("%a %d") if local.hour == 0 else None


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
        label = _hour_label(bucket.start, len(buckets))
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
        when = timezone.localtime(bucket.start).strftime("%Y-%m-%d %H:%M")
        tip = escape(
            gettext("%(when)s: %(succeeded)d succeeded, %(failed)d failed")
            % {"when": when, "succeeded": bucket.succeeded, "failed": bucket.failed}
        )
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


def dashboard_context(now: datetime | None = None) -> dict[str, Any]:
    """Charts and tables of the dashboard for the last 24 hours and the last 7 days."""
    now = now or timezone.now()
    windows = []
    for key, label, hours in (("24h", gettext("last 24 hours"), 24), ("7d", gettext("last 7 days"), 24 * 7)):
        buckets = hourly_outcomes(hours, now=now)
        windows.append(
            {
                "key": key,
                "label": label,
                "summary": window_summary(buckets),
                "outcomes_svg": outcomes_chart_svg(
                    buckets, gettext("Delivery attempts per hour, %(window)s") % {"window": label}
                ),
                "latency_svg": latency_chart_svg(
                    buckets, gettext("Latency percentiles per hour, %(window)s") % {"window": label}
                ),
                "top_failing": top_failing_subscriptions(hours, now=now),
            }
        )
    return {"windows": windows, "generated_at": now}

"""The stats endpoint's query parameters and answer: one subscription's attempts per hour or day.

Figures come from :class:`~django_webhooks.models.AttemptStats` (hourly counts written as attempts
are recorded) through :func:`django_webhooks.stats.outcome_buckets`, one grouped query whose cost
follows the buckets asked for, never the attempts table; :data:`MAX_BUCKETS` bounds it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..models import AttemptStats, Subscription
from ..stats import BUCKET_SIZES, FAILURE_CLASSES, HourlyOutcomes, bucket_start, outcome_buckets, window_summary

#: Buckets one answer holds at most (41 days of hours, 2.7 years of days).
MAX_BUCKETS = 1_000
#: The window when ``since`` is left out, per bucket size.
DEFAULT_WINDOWS = {"hour": timedelta(hours=24), "day": timedelta(days=30)}
#: Times the API accepts: far enough from the ends of ``datetime`` that a bucket never overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 date-time with its offset: a time without one names no instant, so it is refused
    instead of read in the server's time zone."""

    default_error_messages = {
        "naive": _("Give the time zone offset (2024-05-01T00:00:00Z or +02:00)."),
        "range": _("The time must be between 1970 and 9000."),
    }

    def enforce_timezone(self, value: datetime) -> datetime:
        if timezone.is_naive(value):
            self.fail("naive")
        value = super().enforce_timezone(value)
        if not EARLIEST <= value < LATEST:
            self.fail("range")
        return value


class StatsQuerySerializer(serializers.Serializer):
    """``?since=&until=&bucket=``: the window and the bucket size."""

    since = AwareDateTimeField(
        required=False,
        help_text=_(
            "Start of the window (ISO 8601 with an offset); the bucket it falls in is the first. "
            "Default: 24 hours (bucket=hour) or 30 days (bucket=day) before until."
        ),
    )
    until = AwareDateTimeField(
        required=False, help_text=_("End of the window (ISO 8601 with an offset), excluded. Default: now.")
    )
    bucket = serializers.ChoiceField(
        choices=list(BUCKET_SIZES),
        default="hour",
        help_text=_("Bucket size: hour or day, aligned on UTC."),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        bucket = attrs["bucket"]
        until = attrs.get("until") or timezone.now()
        since = attrs.get("since") or max(until - DEFAULT_WINDOWS[bucket], EARLIEST)
        if since >= until:
            raise serializers.ValidationError({"until": [_("until must be after since.")]})
        size = BUCKET_SIZES[bucket]
        count = -(-(until - bucket_start(since, bucket)) // size)
        if count > MAX_BUCKETS:
            raise serializers.ValidationError(
                {
                    "since": [
                        _(
                            "This window holds %(count)d buckets (bucket=%(bucket)s); at most %(max)d: narrow it, or use bucket=day."
                        )
                        % {"count": count, "bucket": bucket, "max": MAX_BUCKETS}
                    ]
                }
            )
        return {"since": since, "until": until, "bucket": bucket}


class FailuresSerializer(serializers.Serializer):
    """Failed attempts by class."""

    def get_fields(self) -> dict[str, serializers.Field]:
        descriptions = {
            "4xx": _("Answered with a 4xx status."),
            "5xx": _("Answered with a 5xx status."),
            "timeout": _("No answer in time."),
            "connection": _("Connection, DNS or TLS errors."),
            "other": _("Anything else: a redirect, a blocked or invalid target, an internal error, an odd status."),
        }
        return {name: serializers.IntegerField(help_text=descriptions[name]) for name in FAILURE_CLASSES}


class StatsFiguresSerializer(serializers.Serializer):
    """The figures of a bucket or of the whole window."""

    attempts = serializers.IntegerField(help_text=_("Requests made."))
    successes = serializers.IntegerField(help_text=_("Requests answered with a 2xx status."))
    failed = serializers.IntegerField(help_text=_("Requests that failed (attempts - successes)."))
    failures = FailuresSerializer(help_text=_("Failed requests by class."))
    success_rate = serializers.FloatField(
        allow_null=True, help_text=_("successes / attempts (0 to 1); null without attempts.")
    )
    p50_ms = serializers.FloatField(
        allow_null=True, help_text=_("Median latency in ms, estimated from a histogram; null without attempts.")
    )
    p95_ms = serializers.FloatField(
        allow_null=True, help_text=_("95th percentile latency in ms, estimated from a histogram.")
    )
    p99_ms = serializers.FloatField(
        allow_null=True, help_text=_("99th percentile latency in ms, estimated from a histogram.")
    )


class StatsBucketSerializer(StatsFiguresSerializer):
    start = serializers.DateTimeField(default_timezone=UTC, help_text=_("Start of the bucket (UTC)."))


class StatsSerializer(serializers.Serializer):
    """One subscription's attempts in a window, per bucket (oldest first, empty ones included)."""

    subscription = serializers.IntegerField(help_text=_("The subscription's id."))
    bucket = serializers.ChoiceField(choices=list(BUCKET_SIZES), help_text=_("Bucket size: hour or day."))
    since = serializers.DateTimeField(default_timezone=UTC, help_text=_("Start of the first bucket (UTC)."))
    until = serializers.DateTimeField(default_timezone=UTC, help_text=_("End of the window, as asked (excluded)."))
    buckets = StatsBucketSerializer(many=True, help_text=_("One entry per bucket, oldest first."))
    totals = StatsFiguresSerializer(help_text=_("The whole window."))


def _figures(buckets: list[HourlyOutcomes]) -> dict[str, Any]:
    summary = window_summary(buckets)
    figures: dict[str, Any] = {
        "attempts": summary["attempts"],
        "successes": summary["succeeded"],
        "failed": summary["failed"],
        "failures": summary["failures"],
        "success_rate": summary["success_rate"],
    }
    for name in ("p50_ms", "p95_ms", "p99_ms"):
        figures[name] = None if summary[name] is None else round(summary[name], 1)
    return figures


def subscription_stats(subscription: Subscription, since: datetime, until: datetime, bucket: str) -> dict[str, Any]:
    """The answer of the stats endpoint for a window :class:`StatsQuerySerializer` validated."""
    buckets = outcome_buckets(AttemptStats.objects.filter(subscription=subscription), since, until, bucket)
    return {
        "subscription": subscription.pk,
        "bucket": bucket,
        "since": bucket_start(since, bucket),
        "until": until,
        "buckets": [{"start": b.start, **_figures([b])} for b in buckets],
        "totals": _figures(buckets),
    }

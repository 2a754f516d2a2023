"""The webhooks_rebuild_stats command: hourly statistics recounted from the attempts still stored."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_webhooks.delivery import attempt_stats
from django_webhooks.models import AttemptStats, DeliveryAttempt, ErrorClass
from django_webhooks.stats import bucket_start

pytestmark = pytest.mark.django_db


def rebuild(*args: str) -> str:
    out = io.StringIO()
    call_command("webhooks_rebuild_stats", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def history(make_subscription, make_delivery):
    """Attempts stored before the statistics existed: two subscriptions, three old hours, one recent."""
    busy, quiet = make_subscription(description="busy"), make_subscription(description="quiet")
    old = bucket_start(timezone.now()) - timedelta(hours=5)

    def store(subscription, at, **fields):
        fields.setdefault("succeeded", True)
        fields.setdefault("response_status", 200)
        return DeliveryAttempt.objects.create(
            delivery=make_delivery(subscription),
            subscription=subscription,
            attempt_number=1,
            url=subscription.url,
            created_at=at,
            duration_ms=120,
            **fields,
        )

    for minute in range(3):
        store(busy, old + timedelta(minutes=minute))
    store(busy, old + timedelta(hours=1), succeeded=False, response_status=500, error_class=ErrorClass.HTTP_STATUS)
    store(quiet, old + timedelta(hours=2), succeeded=False, response_status=None, error_class=ErrorClass.TIMEOUT)
    store(busy, timezone.now())  # this hour: left to the workers
    return {"busy": busy, "quiet": quiet, "old": old}


def test_rebuilds_the_hours_from_the_stored_attempts(history):
    output = rebuild()
    busy, quiet, old = history["busy"], history["quiet"], history["old"]
    assert "Rebuilding the hourly statistics of 2 subscription(s)" in output
    assert f"[1/2] subscription #{busy.pk}: 4 attempt(s), 2 hour(s) written, 0 kept" in output
    assert "Read 5 attempt(s): 3 hour(s) written, 0 kept as they were." in output
    assert sorted(AttemptStats.objects.values_list("subscription_id", "hour", "attempts", "successes")) == [
        (busy.pk, old, 3, 3),
        (busy.pk, old + timedelta(hours=1), 1, 0),
        (quiet.pk, old + timedelta(hours=2), 1, 0),
    ]
    assert AttemptStats.objects.get(subscription=quiet).failed_timeout == 1
    assert AttemptStats.objects.get(subscription=busy, hour=old).latency_le_250 == 3


def test_a_second_run_changes_nothing(history):
    rebuild()
    before = list(AttemptStats.objects.order_by("pk").values())
    assert "Read 5 attempt(s): 0 hour(s) written, 3 kept as they were." in rebuild()
    assert list(AttemptStats.objects.order_by("pk").values()) == before


def test_hours_the_workers_counted_in_full_are_kept(history):
    busy, old = history["busy"], history["old"]
    # Two of the hour's attempts were pruned after the workers had counted all three... and one more.
    attempt_stats.add(list(DeliveryAttempt.objects.filter(subscription=busy, created_at__lt=old + timedelta(hours=1))))
    attempt_stats.add(
        list(DeliveryAttempt.objects.filter(subscription=busy, created_at__lt=old + timedelta(minutes=1)))
    )
    DeliveryAttempt.objects.filter(subscription=busy, created_at__lt=old + timedelta(minutes=2)).delete()
    rebuild("--subscription", str(busy.pk))
    assert AttemptStats.objects.get(subscription=busy, hour=old).attempts == 4


def test_since_until_and_subscription_narrow_it(history):
    quiet, old = history["quiet"], history["old"]
    output = rebuild(
        "--since", (old + timedelta(hours=1)).isoformat(), "--until", (old + timedelta(hours=2)).isoformat()
    )
    assert "Read 1 attempt(s): 1 hour(s) written" in output
    assert list(AttemptStats.objects.values_list("hour", flat=True)) == [old + timedelta(hours=1)]
    assert "Read 1 attempt(s)" in rebuild("--subscription", str(quiet.pk))
    assert "quiet" not in rebuild("--subscription", str(quiet.pk), "--verbosity", "0")


def test_wrong_arguments_are_command_errors(history):
    with pytest.raises(CommandError, match="not a date and time"):
        rebuild("--since", "yesterday")
    with pytest.raises(CommandError, match="--since must be before --until"):
        rebuild("--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z")
    with pytest.raises(CommandError, match="No subscription with id 987654"):
        rebuild("--subscription", "987654")


def test_help_says_what_it_does(capsys):
    with pytest.raises(SystemExit):
        call_command("webhooks_rebuild_stats", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "from the delivery attempts still stored" in text
    assert "--since" in text and "--until" in text and "--subscription" in text

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_webhooks.delivery.retention import prune
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription():
    return Subscription.objects.create(url="https://example.com/hook", event_types=["*"])


def make_event(subscription, age_days, statuses=(DeliveryStatus.SUCCEEDED,), fanned_out=True, attempts=1):
    created = timezone.now() - timedelta(days=age_days)
    event = Event.objects.create(
        event_type="order.created", payload={}, created_at=created, fanned_out_at=created if fanned_out else None
    )
    for index, status in enumerate(statuses):
        other = subscription if index == 0 else Subscription.objects.create(url=f"https://example.com/{index}")
        delivery = Delivery.objects.create(event=event, subscription=other, status=status, created_at=created)
        for number in range(1, attempts + 1):
            DeliveryAttempt.objects.create(
                delivery=delivery, subscription=other, attempt_number=number, url=other.url, created_at=created
            )
    return event


def test_old_finished_events_go_with_their_deliveries_and_attempts(subscription):
    old = [
        make_event(subscription, 40, statuses=[status]) for status in ["succeeded", "failed", "exhausted", "cancelled"]
    ]
    recent = make_event(subscription, 5)
    result = prune()
    assert result["events"] == 4 and result["deliveries"] == 4 and result["attempts"] == 4
    assert not Event.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert list(Event.objects.all()) == [recent]
    assert Delivery.objects.filter(event=recent).count() == 1
    assert DeliveryAttempt.objects.filter(delivery__event=recent).count() == 1


def test_events_with_unfinished_deliveries_are_kept(subscription):
    pending = make_event(subscription, 40, statuses=["succeeded", "pending"])
    in_flight = make_event(subscription, 40, statuses=["in_flight"])
    never_fanned_out = make_event(subscription, 40, statuses=[], fanned_out=False)
    result = prune()
    assert result["events"] == 0
    assert set(Event.objects.all()) == {pending, in_flight, never_fanned_out}
    assert Delivery.objects.filter(status="pending").count() == 1
    assert Delivery.objects.filter(status="in_flight").count() == 1
    # The log of their old attempts goes; the deliveries stay.
    assert result["attempts"] == 3
    assert DeliveryAttempt.objects.count() == 0


def test_cutoff_and_setting(subscription):
    make_event(subscription, 10)
    make_event(subscription, 40)
    with override_settings(DJANGO_WEBHOOKS={"RETENTION_DAYS": 7}):
        assert prune()["events"] == 2
    make_event(subscription, 10)
    assert prune(older_than_days=30)["events"] == 0
    assert prune(older_than_days=9)["events"] == 1


def test_batches_cover_everything_and_report_progress(subscription):
    for _ in range(7):
        make_event(subscription, 40, attempts=2)
    recent = make_event(subscription, 1, attempts=2)
    calls = []
    result = prune(batch_size=3, progress=lambda kind, n, total: calls.append((kind, n, total)))
    assert result["events"] == 7 and result["attempts"] == 14
    # An event's two attempts share a timestamp: a window takes both rather than splitting them.
    assert calls == [
        ("attempts", 4, 4),
        ("attempts", 4, 8),
        ("attempts", 4, 12),
        ("attempts", 2, 14),
        ("events", 3, 3),
        ("events", 3, 6),
        ("events", 1, 7),
    ]
    assert result["batches"] == 7
    assert list(Event.objects.all()) == [recent]
    assert DeliveryAttempt.objects.count() == 2


def test_attempts_go_oldest_first_in_windows_of_the_batch_size(subscription):
    delivery = make_event(subscription, 50).deliveries.get()
    start = timezone.now() - timedelta(days=40)
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            delivery=delivery,
            subscription=subscription,
            attempt_number=number,
            url=subscription.url,
            created_at=start + timedelta(minutes=number),
        )
        for number in range(2, 12)
    )
    # The same delivery's attempt after the cutoff stays, and keeps the event.
    DeliveryAttempt.objects.create(
        delivery=delivery, subscription=subscription, attempt_number=12, url=subscription.url
    )
    expected = prune(batch_size=4, dry_run=True)
    assert (expected["attempts"], expected["events"]) == (12, 1)
    left = []
    result = prune(
        batch_size=4,
        progress=lambda kind, n, total: left.append(
            (kind, n, sorted(DeliveryAttempt.objects.values_list("attempt_number", flat=True)))
        ),
    )
    assert left[:3] == [
        ("attempts", 4, list(range(5, 13))),
        ("attempts", 4, list(range(9, 13))),
        ("attempts", 3, [12]),
    ]
    # Then the event, whose delivery is finished, with the newer attempt.
    assert left[3:] == [("events", 1, [])]
    assert not Event.objects.exists()
    assert result == expected


def test_the_work_per_batch_is_a_few_statements_with_a_few_parameters(subscription):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(30):
        make_event(subscription, 40, attempts=2)
    with CaptureQueriesContext(connection) as captured:
        result = prune(batch_size=1000)
    assert (result["events"], result["deliveries"], result["attempts"], result["batches"]) == (30, 30, 60, 2)
    # Not one statement per row, and no list of ids sent back to the database.
    statements = [query["sql"] for query in captured.captured_queries]
    assert len(statements) <= 20
    assert all(sql.count("%s") + sql.count("?") < 20 for sql in statements)
    assert max(len(sql) for sql in statements) < 2000


def test_deliveries_are_deleted_through_django_when_a_delete_signal_listens(subscription):
    from django.db.models.signals import post_delete

    make_event(subscription, 40, statuses=["succeeded", "failed"])
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance.status)

    post_delete.connect(receiver, sender=Delivery)
    try:
        result = prune()
    finally:
        post_delete.disconnect(receiver, sender=Delivery)
    assert (result["events"], result["deliveries"]) == (1, 2)
    assert sorted(seen) == ["failed", "succeeded"]
    assert not Delivery.objects.exists()


def test_a_resent_delivery_keeps_its_event(subscription):
    from django_webhooks.delivery.operations import resend

    event = make_event(subscription, 40, statuses=["failed", "succeeded"])
    resend(event.deliveries.get(status="failed"))
    result = prune()
    assert result["events"] == 0 and result["deliveries"] == 0
    assert event.deliveries.count() == 2


def test_dry_run_deletes_nothing(subscription):
    make_event(subscription, 40, attempts=3)
    make_event(subscription, 40, statuses=["pending"], attempts=2)
    result = prune(dry_run=True)
    assert (result["events"], result["deliveries"], result["attempts"]) == (1, 1, 5)
    assert Event.objects.count() == 2 and DeliveryAttempt.objects.count() == 5
    assert prune() == {**result, "batches": result["batches"]}


def test_prune_command(subscription):
    make_event(subscription, 40, attempts=2)
    make_event(subscription, 40, attempts=2)
    make_event(subscription, 2)
    out = io.StringIO()
    call_command("webhooks_prune", "--dry-run", stdout=out)
    assert "Would delete 2 event(s), 2 delivery(ies), 4 attempt(s) and 0 hourly statistics row(s)" in out.getvalue()
    assert Event.objects.count() == 3
    out = io.StringIO()
    call_command("webhooks_prune", "--batch-size", "1", stdout=out)
    output = out.getvalue()
    assert "deleted 1 events (2 so far)" in output
    assert "Deleted 2 event(s), 2 delivery(ies), 4 attempt(s) and 0 hourly statistics row(s)" in output
    assert Event.objects.count() == 1
    out = io.StringIO()
    call_command("webhooks_prune", "--days", "1", stdout=out)
    assert "older than 1 day(s)" in out.getvalue()
    assert Event.objects.count() == 0


def test_prune_command_rejects_bad_arguments():
    with pytest.raises(CommandError):
        call_command("webhooks_prune", "--days", "-1")
    with pytest.raises(CommandError):
        call_command("webhooks_prune", "--batch-size", "0")


def test_prune_task_uses_retention():
    from django_webhooks import tasks

    assert tasks.prune()["events"] == 0


def test_hourly_statistics_outlive_the_attempts_and_go_after_stats_retention_days(subscription):
    from django_webhooks.delivery.retention import STATS_RETENTION_DAYS
    from django_webhooks.models import AttemptStats
    from django_webhooks.stats import bucket_start

    now = timezone.now()
    hour = bucket_start(now)
    for days in (40, STATS_RETENTION_DAYS - 1, STATS_RETENTION_DAYS + 1, STATS_RETENTION_DAYS + 30):
        AttemptStats.objects.create(subscription=subscription, hour=hour - timedelta(days=days), attempts=1)
    assert prune(dry_run=True, now=now)["stats"] == 2
    assert AttemptStats.objects.count() == 4
    result = prune(now=now, batch_size=1, progress=lambda kind, n, total: None)
    assert result["stats"] == 2
    assert sorted(now - h for h in AttemptStats.objects.values_list("hour", flat=True)) == [
        now - (hour - timedelta(days=40)),
        now - (hour - timedelta(days=STATS_RETENTION_DAYS - 1)),
    ]
    # Never shorter than the history itself.
    AttemptStats.objects.create(subscription=subscription, hour=hour - timedelta(days=STATS_RETENTION_DAYS + 50))
    assert prune(older_than_days=STATS_RETENTION_DAYS + 100, now=now)["stats"] == 0
    assert prune(older_than_days=1, now=now)["stats"] == 1

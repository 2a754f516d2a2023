"""django-q2 entry points, the schedules they run on, and the webhooks_sweep command."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from django_webhooks import tasks
from django_webhooks.delivery import broker, schedules
from django_webhooks.models import Delivery, DeliveryStatus, Event
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


def queued() -> int:
    return broker.get_broker().queue_size()


@pytest.fixture(autouse=True)
def empty_queue(fresh_brokers):
    q_broker = broker.get_broker()
    q_broker.purge_queue()
    yield
    q_broker.purge_queue()


def pending_event(event_type="order.created", payload=None) -> Event:
    return Event.objects.create(event_type=event_type, payload=payload or {"id": 1})


def test_sweep_fans_out_forgotten_events_and_enqueues_delivery(make_subscription):
    subscription = make_subscription(event_types=["order.*"])
    event = pending_event()
    result = tasks.sweep()
    assert result["fanned_out"] == 1 and result["due"] == 1 and result["enqueued"] == 1
    assert Delivery.objects.get(event=event).subscription == subscription
    assert queued() == 1


def test_sweep_releases_expired_leases(make_subscription, make_delivery):
    delivery = make_delivery(
        make_subscription(), status=DeliveryStatus.IN_FLIGHT, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    result = tasks.sweep()
    assert result["released"] == 1 and result["due"] == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.lease_expires_at is None


def test_sweep_enqueues_nothing_when_nothing_is_due(make_subscription, make_delivery):
    make_delivery(make_subscription(), next_attempt_at=timezone.now() + timedelta(hours=1))
    assert tasks.sweep() == {"fanned_out": 0, "released": 0, "due": 0, "enqueued": 0}
    assert queued() == 0


def test_process_events_fans_out_and_delivers(receiver, make_subscription):
    make_subscription(url=receiver.url(), event_types=["order.created"])
    event = pending_event()
    assert tasks.process_events() == 1
    [request] = receiver.wait_for(1)
    assert request.body == Event.objects.get(pk=event.pk).body.encode()
    assert Delivery.objects.get().status == DeliveryStatus.SUCCEEDED


def test_process_events_asks_other_workers_to_help_with_a_backlog(settings, receiver, make_subscription):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 2}
    for i in range(3):
        make_subscription(url=receiver.url(f"/{i}"), event_types=["order.created"])
    pending_event()
    pending_event()
    assert tasks.process_events() == 6
    assert queued() >= 1


def test_deliver_due_task_delivers(receiver, make_subscription, make_delivery):
    make_delivery(make_subscription(url=receiver.url()))
    assert tasks.deliver_due() == 1


def test_a_task_that_spends_its_budget_with_work_left_enqueues_its_successor(
    settings, receiver, make_subscription, make_delivery
):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "TASK_TIME_BUDGET": 0.02}
    receiver.script = [Reply(200, delay=0.05)]
    subscription = make_subscription(url=receiver.url())
    for _ in range(3):
        make_delivery(subscription)
    assert tasks.deliver_due() == 1
    assert queued() == 1
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING, attempts=0).count() == 2


def test_a_task_that_finished_the_work_enqueues_nothing(receiver, make_subscription, make_delivery):
    make_delivery(make_subscription(url=receiver.url()))
    assert tasks.deliver_due() == 1
    assert queued() == 0


def test_prune_task_runs_retention(make_subscription, make_delivery):
    old = make_delivery(make_subscription(), status=DeliveryStatus.SUCCEEDED)
    Event.objects.filter(pk=old.event_id).update(created_at=timezone.now() - timedelta(days=400))
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=400))
    tasks.prune()
    assert not Delivery.objects.filter(pk=old.pk).exists()


def test_schedules_exist_after_migrate_and_are_created_once():
    assert set(Schedule.objects.values_list("name", flat=True)) >= set(schedules.SCHEDULES)
    sweep = Schedule.objects.get(name="django_webhooks.sweep")
    assert sweep.func == "django_webhooks.tasks.sweep"
    assert sweep.schedule_type == Schedule.MINUTES and sweep.minutes == 1 and sweep.repeats == -1
    assert Schedule.objects.get(name="django_webhooks.prune").schedule_type == Schedule.DAILY
    Schedule.objects.filter(name__startswith="django_webhooks.").delete()
    assert sorted(schedules.ensure_schedules()) == sorted(schedules.SCHEDULES)
    assert schedules.ensure_schedules() == []
    assert Schedule.objects.filter(name__startswith="django_webhooks.").count() == 2


def test_webhooks_sweep_command_reports_what_it_did(make_subscription, make_delivery):
    make_delivery(make_subscription())
    out = StringIO()
    call_command("webhooks_sweep", stdout=out)
    assert "1 delivery(ies) due" in out.getvalue() and "enqueued 1" in out.getvalue()


def test_webhooks_sweep_command_help_explains_itself(capsys):
    with pytest.raises(SystemExit):
        call_command("webhooks_sweep", "--help")
    help_text = capsys.readouterr().out
    assert "expired lease" in help_text and "--loop" in help_text

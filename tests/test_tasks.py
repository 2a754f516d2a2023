"""The task entry points, the schedules they run on, and the webhooks_sweep and
webhooks_scheduler commands.

On the dispatcher the suite runs on: django-q2's broker, or with ``DWH_DISPATCHER=django_tasks``
django-tasks-db's table (see tests/settings.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_webhooks import tasks
from django_webhooks.delivery import broker, schedules
from django_webhooks.models import Delivery, DeliveryStatus, Event
from tests.qcluster import ROOT, database_env, on_django_tasks
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

django_q_only = pytest.mark.skipif(on_django_tasks(), reason="django-q2 only (this run: DWH_DISPATCHER=django_tasks)")
django_tasks_only = pytest.mark.skipif(not on_django_tasks(), reason="runs with DWH_DISPATCHER=django_tasks")


def ready_rows():
    """django-tasks-db's tasks waiting to run."""
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.filter(status="READY")


def queued() -> int:
    if on_django_tasks():
        return ready_rows().count()
    return broker.get_broker().queue_size()


def purge() -> None:
    if on_django_tasks():
        from django_tasks_db.models import DBTaskResult

        DBTaskResult.objects.all().delete()
    else:
        broker.get_broker().purge_queue()


@pytest.fixture(autouse=True)
def empty_queue(fresh_brokers):
    broker._deferred_until.clear()
    purge()
    yield
    purge()
    broker._deferred_until.clear()


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
    assert tasks.sweep() == {"fanned_out": 0, "released": 0, "due": 0, "enqueued": 0, "handshakes": 0}
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


@django_q_only
def test_schedules_exist_after_migrate_and_are_created_once():
    from django_q.models import Schedule

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


def test_each_task_framework_entry_point_is_a_task_stored_under_its_own_path():
    from django.utils.module_loading import import_string

    for name, target in tasks.TASK_ENTRY_POINTS.items():
        path = f"django_webhooks.tasks.{name}"
        task = import_string(path)
        assert task.module_path == path  # what a Tasks worker imports again to run it
        assert task.func.__doc__ == target.__doc__
    assert callable(tasks.deliver_due)  # django-q2's path is still the plain function


@django_tasks_only
def test_a_retry_falling_due_later_is_deferred_once_through_run_after(
    settings, receiver, make_subscription, make_delivery
):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "RETRY_SCHEDULE": [120], "RETRY_JITTER": 0}
    receiver.script = [Reply(503)]
    delivery = make_delivery(make_subscription(url=receiver.url()))
    assert tasks.deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at > timezone.now()
    (row,) = ready_rows()
    assert row.task_path == "django_webhooks.tasks.deliver_due_task"
    assert row.run_after == delivery.next_attempt_at
    # Another task ending meanwhile relies on that one (it defers the next retry when it ends).
    assert tasks.deliver_due() == 0
    assert ready_rows().count() == 1


@django_q_only
def test_django_q2_defers_nothing():
    assert broker.can_defer() is False
    assert broker.defer_delivery(timezone.now() + timedelta(minutes=1)) is False
    assert queued() == 0


def test_webhooks_scheduler_once_sweeps_and_prunes(make_subscription, make_delivery):
    make_delivery(make_subscription())
    out = StringIO()
    call_command("webhooks_scheduler", "--once", stdout=out)
    assert "1 delivery(ies) due, enqueued 1" in out.getvalue()
    assert "Pruning webhook history older than 30 day(s)" in out.getvalue()
    assert queued() == 1


def test_webhooks_scheduler_help_explains_itself(capsys):
    with pytest.raises(SystemExit):
        call_command("webhooks_scheduler", "--help")
    help_text = capsys.readouterr().out
    assert "webhooks_sweep every minute" in help_text and "--once" in help_text and "SIGTERM" in help_text


@pytest.mark.django_db(transaction=True)
def test_webhooks_scheduler_loops_until_sigterm_then_exits_cleanly(tmp_path):
    env = {**os.environ, **database_env(), "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "manage.py"), "webhooks_scheduler", "--sweep-every", "1"]
    log = tmp_path / "scheduler.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        # It swept, waited, and swept again; then it is stopped as a service manager would.
        while log.read_text().count("Fanned out") < 2 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.read_text().count("Fanned out") >= 2, log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert "Pruning webhook history" in output and "Received SIGTERM" in output
    assert output.rstrip().endswith("Scheduler stopped.")

"""Recording: labels, values, no query on the hot path, safe under fork, a no-op without prometheus_client."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client import REGISTRY

from django_webhooks.delivery.claiming import claim_lanes
from django_webhooks.delivery.fanout import fan_out_pending
from django_webhooks.metrics import recording
from django_webhooks.models import DeliveryAttempt, Event

ROOT = Path(__file__).resolve().parents[2]


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize(
    ("status", "expected"), [(None, "none"), (200, "2xx"), (302, "3xx"), (404, "4xx"), (503, "5xx"), (999, "other")]
)
def test_status_class(status, expected):
    assert recording.status_class(status) == expected


@pytest.mark.parametrize(("error", "expected"), [("", "none"), ("timeout", "timeout"), ("made-up", "other")])
def test_error_class_label(error, expected):
    assert recording.error_class_label(error) == expected


def test_attempts_are_counted_by_outcome_status_class_and_error_class():
    labels = {"outcome": "failed", "status_class": "none", "error_class": "timeout"}
    before = value("django_webhooks_attempts_total", **labels)
    before_ok = value("django_webhooks_attempts_total", outcome="succeeded", status_class="2xx", error_class="none")
    before_count = value("django_webhooks_attempt_duration_seconds_count")
    recording.attempts_recorded(
        [
            DeliveryAttempt(response_status=None, error_class="timeout", duration_ms=2000, succeeded=False),
            DeliveryAttempt(response_status=None, error_class="timeout", duration_ms=2000, succeeded=False),
            DeliveryAttempt(response_status=204, duration_ms=12, succeeded=True, created_at=timezone.now()),
        ]
    )
    assert value("django_webhooks_attempts_total", **labels) == before + 2
    assert (
        value("django_webhooks_attempts_total", outcome="succeeded", status_class="2xx", error_class="none")
        == before_ok + 1
    )
    assert value("django_webhooks_attempt_duration_seconds_count") == before_count + 3


@pytest.mark.django_db
def test_the_delivery_latency_comes_from_the_claimed_event_without_a_query(make_subscription, make_delivery):
    subscription = make_subscription()
    delivery = make_delivery(subscription)
    Event.objects.filter(pk=delivery.event_id).update(created_at=timezone.now() - timedelta(seconds=40))
    [lane] = claim_lanes(1)
    [claimed] = lane.deliveries
    attempt = DeliveryAttempt(
        delivery=claimed, response_status=200, duration_ms=500, succeeded=True, created_at=timezone.now()
    )
    before = value("django_webhooks_delivery_latency_seconds_count")
    before_slow = value("django_webhooks_delivery_latency_seconds_bucket", le="30.0")
    with CaptureQueriesContext(connection) as queries:
        recording.attempts_recorded([attempt])
    assert len(queries) == 0
    assert value("django_webhooks_delivery_latency_seconds_count") == before + 1
    # 40.5 s: above the 30 s bucket.
    assert value("django_webhooks_delivery_latency_seconds_bucket", le="30.0") == before_slow


def test_state_changes_are_counted_by_change_and_reason():
    before = value("django_webhooks_endpoint_state_changes_total", change="disabled", reason="gone")
    recording.endpoint_state_changed("disabled", "gone")
    assert value("django_webhooks_endpoint_state_changes_total", change="disabled", reason="gone") == before + 1


def test_an_unknown_state_change_is_logged_not_raised(caplog):
    recording.endpoint_state_changed("exploded", "auto")
    assert "Could not record" in caplog.text
    assert value("django_webhooks_endpoint_state_changes_total", change="exploded", reason="auto") == 0


@pytest.mark.django_db(transaction=True)
def test_fanned_out_events_are_counted_once_committed_by_type_with_unknown_types_as_other(make_subscription):
    make_subscription()
    before = value("django_webhooks_events_total", event_type="order.created")
    before_other = value("django_webhooks_events_total", event_type="other")
    Event.objects.bulk_create(
        [Event(event_type="order.created", payload={}), Event(event_type="order.created", payload={})]
        + [Event(event_type="not.in.catalog", payload={})]
    )
    assert fan_out_pending() == 3
    assert value("django_webhooks_events_total", event_type="order.created") == before + 2
    assert value("django_webhooks_events_total", event_type="other") == before_other + 1


@pytest.mark.django_db(transaction=True)
def test_a_fan_out_that_rolls_back_counts_nothing():
    from django.db import transaction

    Event.objects.create(event_type="order.created", payload={})
    before = value("django_webhooks_events_total", event_type="order.created")
    with pytest.raises(RuntimeError), transaction.atomic():
        fan_out_pending()
        raise RuntimeError
    assert value("django_webhooks_events_total", event_type="order.created") == before


FORK_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    import django
    django.setup()
    from django_webhooks.models import DeliveryAttempt
    from django_webhooks.metrics import recording

    FORKS = int(sys.argv[1])
    stop = threading.Event()
    counted = [0] * 4

    def record(slot):
        attempt = DeliveryAttempt(response_status=500, duration_ms=3, succeeded=False)
        while not stop.is_set():
            recording.endpoint_state_changed("circuit_opened", "thread")
            recording.attempts_recorded([attempt])
            counted[slot] += 1

    threads = [threading.Thread(target=record, args=(slot,)) for slot in range(4)]
    for thread in threads:
        thread.start()
    hung = 0
    for _ in range(FORKS):
        pid = os.fork()
        if pid == 0:
            signal.alarm(20)  # a child that hangs on an inherited lock dies of SIGALRM
            recording.endpoint_state_changed("circuit_opened", "child")
            recording.attempts_recorded([DeliveryAttempt(response_status=200, duration_ms=3, succeeded=True)])
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        hung += status != 0
    stop.set()
    for thread in threads:
        thread.join()
    print(hung, sum(counted))
    """
)


@pytest.mark.parametrize("multiprocess", [True, False], ids=["multiprocess", "single-process"])
def test_forking_while_threads_record_leaves_no_lock_held(tmp_path, multiprocess):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if multiprocess:
        env["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    forks = 200
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT, str(forks)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,  # a child or parent stuck on an inherited lock never finishes
    )
    assert done.returncode == 0, done.stderr
    assert "Could not record" not in done.stderr, done.stderr[-3000:]
    hung, by_threads = map(int, done.stdout.split())
    assert hung == 0
    if multiprocess:
        # Every process's file is whole: the children's counts and the threads' add up exactly.
        from prometheus_client.multiprocess import MultiProcessCollector

        found = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for metric in MultiProcessCollector.merge([str(p) for p in tmp_path.glob("*.db")])
            for sample in metric.samples
        }
        changes = "django_webhooks_endpoint_state_changes_total"
        assert found[(changes, (("change", "circuit_opened"), ("reason", "child")))] == forks
        assert found[(changes, (("change", "circuit_opened"), ("reason", "thread")))] == by_threads


NO_CLIENT_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["prometheus_client"] = None  # what an install without the metrics extra sees
    import django
    django.setup()
    from django.core.management import call_command
    from django.test import Client
    from django_webhooks.metrics import recording
    from django_webhooks.models import DeliveryAttempt

    recording.events_fanned_out(["order.created"])
    recording.attempts_recorded([DeliveryAttempt(response_status=200, duration_ms=1, succeeded=True)])
    recording.endpoint_state_changed("disabled", "gone")
    assert recording.pipeline_metrics() is None
    response = Client().get("/metrics/", headers={"Authorization": "Bearer " + "t" * 40})
    print(response.status_code, response.content.decode())
    call_command("check")
    """
)


def test_without_prometheus_client_recording_is_a_no_op_and_the_view_says_why():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "DWH_TEST_OVERRIDES": '{"METRICS_TOKEN": "' + "t" * 40 + '"}',
    }
    done = subprocess.run(
        [sys.executable, "-c", NO_CLIENT_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("503 prometheus_client is not installed")
    assert "django_webhooks.W010" in done.stderr
    assert "Traceback" not in done.stderr

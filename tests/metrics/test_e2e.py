"""End to end: a real qcluster (multiprocess mode) delivers, the metrics view reads its workers' files.

The cluster's workers write their counters under ``PROMETHEUS_MULTIPROC_DIR``; this process
scrapes the view, which merges those files (and, once the cluster stopped, folds the dead
workers' files together). The counters must equal the attempt rows, before and after.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from django_webhooks.capture.events import send_event
from django_webhooks.delivery import broker
from django_webhooks.metrics.recording import error_class_label, status_class
from django_webhooks.models import FINAL_STATUSES, Delivery, DeliveryAttempt, Event, Subscription
from tests.metrics.conftest import promtool_check, samples
from tests.receiver import Reply
from tests.test_e2e_delivery import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST = {
    "RETRY_SCHEDULE": [1, 1],
    "RETRY_JITTER": 0,
    "TIMEOUT": 1,
    "CONNECT_TIMEOUT": 1,
    "LEASE_SECONDS": 6,
    "TASK_TIME_BUDGET": 5,
    # Every delivery runs out its retries instead of waiting behind an open circuit.
    "CIRCUIT_BREAKER_THRESHOLD": 100,
}


@pytest.fixture(autouse=True)
def multiprocess_dir(settings, fresh_brokers, tmp_path, monkeypatch):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **FAST}
    directory = tmp_path / "prometheus"
    directory.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    return directory


def scrape(client) -> str:
    response = client.get("/metrics/")
    assert response.status_code == 200
    return response.content.decode()


def attempt_counters(exposition: str) -> Counter:
    return Counter(
        {
            labels: value
            for (name, labels), value in samples(exposition).items()
            if name == "django_webhooks_attempts_total" and value
        }
    )


def attempt_rows() -> Counter:
    rows = Counter()
    for succeeded, status, error in DeliveryAttempt.objects.values_list("succeeded", "response_status", "error_class"):
        labels = {
            "outcome": "succeeded" if succeeded else "failed",
            "status_class": status_class(status),
            "error_class": error_class_label(error),
        }
        rows[tuple(sorted(labels.items()))] += 1
    return rows


def test_the_counters_equal_the_attempt_rows_after_a_mixed_workload(
    qcluster, receiver, make_subscription, staff_client, multiprocess_dir
):
    receiver.routes = {
        "/ok": [Reply(200)],
        "/broken": [Reply(500)],
        "/slow": [Reply(200, delay=10)],
        "/gone": [Reply(410)],
    }
    for path in ("/ok", "/broken", "/slow"):
        make_subscription(url=receiver.url(path), event_types=["order.*"])
    gone = make_subscription(url=receiver.url("/gone"), event_types=["order.*"])
    make_subscription(url=receiver.url("/ok"), event_types=["order.*"], enabled=False)
    cluster = qcluster(FAST)
    for number in range(2):
        send_event("order.created", {"id": number})
    send_event("order.updated", {"id": 9})

    def settled():
        # 3 events to 4 subscriptions; the 410 disables its endpoint, whose other deliveries wait.
        deliveries = Delivery.objects.exclude(subscription=gone)
        return (
            Delivery.objects.count() == 12
            and all(d.status in FINAL_STATUSES for d in deliveries)
            and not Subscription.objects.get(pk=gone.pk).enabled
        )

    assert wait_until(settled, timeout=120), list(Delivery.objects.values_list("status", "attempts"))
    live = scrape(staff_client)
    promtool_check(live)
    rows = attempt_rows()
    assert set(rows) >= {
        (("error_class", "none"), ("outcome", "succeeded"), ("status_class", "2xx")),
        (("error_class", "http_status"), ("outcome", "failed"), ("status_class", "5xx")),
        (("error_class", "timeout"), ("outcome", "failed"), ("status_class", "none")),
    }
    assert attempt_counters(live) == rows
    found = samples(live)
    assert found[("django_webhooks_events_total", (("event_type", "order.created"),))] == 2
    assert found[("django_webhooks_events_total", (("event_type", "order.updated"),))] == 1
    assert found[("django_webhooks_attempt_duration_seconds_count", ())] == sum(rows.values())
    assert (
        found[("django_webhooks_delivery_latency_seconds_count", ())]
        == rows[(("error_class", "none"), ("outcome", "succeeded"), ("status_class", "2xx"))]
    )
    assert found[("django_webhooks_subscriptions_disabled", ())] == 2  # the disabled one and the 410
    changes = ("django_webhooks_endpoint_state_changes_total", (("change", "disabled"), ("reason", "gone")))
    assert found[changes] == 1

    # The workers are gone: their files are folded together, and every count stays.
    cluster.shut_down()
    after = scrape(staff_client)
    promtool_check(after)
    assert attempt_counters(after) == attempt_rows() == rows
    assert samples(after)[("django_webhooks_events_total", (("event_type", "order.created"),))] == 2
    assert sorted(path.name for path in multiprocess_dir.glob("*.db")) == [
        "counter_compacted.db",
        "histogram_compacted.db",
    ]


def oldest_due_age(client) -> float:
    return samples(scrape(client))[("django_webhooks_oldest_due_delivery_age_seconds", ())]


def test_the_oldest_due_age_rises_while_no_worker_runs_and_falls_once_they_drain(
    qcluster, receiver, make_subscription, make_delivery, staff_client
):
    subscription = make_subscription(url=receiver.url("/hook"))
    due_since = timezone.now() - timedelta(seconds=90)
    for _ in range(5):
        make_delivery(subscription, next_attempt_at=due_since)
    first = oldest_due_age(staff_client)
    assert first >= 90
    assert wait_until(lambda: oldest_due_age(staff_client) > first, timeout=10)

    qcluster(FAST)
    broker.enqueue_delivery(1)
    assert wait_until(lambda: oldest_due_age(staff_client) == 0, timeout=60)
    assert len(receiver.wait_for(5)) == 5
    assert not Event.objects.filter(fanned_out_at__isnull=True).exists()
    assert samples(scrape(staff_client))[("django_webhooks_deliveries_pending", ())] == 0

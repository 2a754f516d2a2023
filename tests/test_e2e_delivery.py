"""End to end: real workers deliver to a loopback receiver.

The workers are a ``manage.py qcluster`` subprocess, or with ``DWH_DISPATCHER=django_tasks``
django-tasks-db's ``manage.py db_worker`` processes (tests/qcluster.py): the same tests run on
both dispatchers. Runs on the test database (SQLite file + ORM broker, or PostgreSQL via
DATABASE_URL + Redis via REDIS_URL). Retries, leases and timeouts are shortened through the
workers' settings; every wait is a bounded poll of the database or the receiver.
"""

from __future__ import annotations

import json
import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook
from svix.webhooks import Webhook as SvixWebhook

from django_webhooks import signals
from django_webhooks.capture.events import send_event
from django_webhooks.delivery import broker
from django_webhooks.delivery.lanes import deliver_due
from django_webhooks.delivery.operations import recover, resend, send_test_event
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription
from django_webhooks.secret_store import current_secret, rotate_secret
from django_webhooks.testing import drain
from tests.qcluster import on_django_tasks
from tests.receiver import ReceivedRequest, Receiver, Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

#: What the cluster (and this process) run with: quick retries, short timeouts and leases.
FAST = {
    "RETRY_SCHEDULE": [1, 1],
    "RETRY_JITTER": 0,
    "TIMEOUT": 2,
    "CONNECT_TIMEOUT": 1,
    "LEASE_SECONDS": 6,
    "TASK_TIME_BUDGET": 5,
}


@pytest.fixture(autouse=True)
def fast_settings(settings, fresh_brokers):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **FAST}


@pytest.fixture
def cluster(qcluster):
    return qcluster(FAST)


def wait_until(condition, timeout: float = 30.0, interval: float = 0.1):
    """Poll ``condition`` until it returns something truthy (bounded); return its last value."""
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = condition()
    return value


def wait_for_status(delivery: Delivery, *statuses: str, timeout: float = 30.0) -> Delivery:
    def settled():
        delivery.refresh_from_db()
        return delivery.status in statuses

    wait_until(settled, timeout)
    return delivery


def settle(cluster) -> None:
    """After this, nothing sends any more: ``cluster`` finished every task it had taken (a
    graceful stop), and what is still due, which the tasks left on the broker would send, was
    fanned out and delivered in this process (:func:`django_webhooks.testing.drain`)."""
    cluster.shut_down()
    drain()


def deliver_to(make_subscription, make_delivery, receiver, path="/hook", **fields):
    subscription = make_subscription(url=receiver.url(path), **fields)
    delivery = make_delivery(subscription)
    broker.enqueue_delivery(1)
    return subscription, delivery


def test_2xx_is_delivered_once_signed_and_verifiable(cluster, receiver, make_subscription):
    subscription = make_subscription(url=receiver.url(), event_types=["order.created"])
    old_secret = current_secret(subscription)
    new_secret = rotate_secret(subscription)
    event = send_event("order.created", {"id": 1, "number": "A-1001", "total": "25.00", "status": "new"})
    [request] = receiver.wait_for(1)
    delivery = wait_for_status(Delivery.objects.get(event=event), DeliveryStatus.SUCCEEDED)
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(request.headers)
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.body == Event.objects.get(pk=event.pk).body.encode()
    assert len(request.headers["webhook-signature"].split()) == 2
    for secret in (old_secret, new_secret):
        StandardWebhook(secret).verify(request.body, request.headers)
        SvixWebhook(secret).verify(request.body, request.headers)
    # Nothing more arrives, after a sweep and once nothing is left to run: exactly once.
    call_command("webhooks_sweep", stdout=StringIO())
    settle(cluster)
    assert len(receiver.received()) == 1
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_500_then_200_makes_two_attempts_with_one_webhook_id(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(500), Reply(200)]
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivery, DeliveryStatus.SUCCEEDED)
    assert delivery.attempts == 2
    assert [r.headers["webhook-id"] for r in receiver.received()] == [delivery.message_id] * 2
    assert list(delivery.delivery_attempts.order_by("attempt_number").values_list("response_status", flat=True)) == [
        500,
        200,
    ]


def test_400_fails_after_one_attempt(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(400)]
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivery, DeliveryStatus.FAILED)
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1
    settle(cluster)  # no retry is left to come either
    assert len(receiver.received()) == 1
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1


def test_410_disables_the_subscription(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(410)]
    subscription, delivery = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivery, DeliveryStatus.FAILED)
    subscription.refresh_from_db()
    assert not subscription.enabled and "410" in subscription.disabled_reason


def test_429_with_retry_after_waits(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(429, headers={"Retry-After": "120"})]
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    assert wait_until(lambda: DeliveryAttempt.objects.filter(delivery=delivery).first())
    wait_for_status(delivery, DeliveryStatus.PENDING)
    attempt = delivery.delivery_attempts.get()
    assert delivery.attempts == 1 and delivery.last_status_code == 429
    assert delivery.next_attempt_at >= attempt.created_at + timedelta(seconds=120)


@pytest.mark.parametrize(
    "reply", [Reply(200, delay=30), Reply(200, body=b"x" * 60, drip=0.5)], ids=["hanging", "dripping"]
)
def test_slow_receivers_are_cut_at_the_timeout(cluster, receiver, make_subscription, make_delivery, reply):
    receiver.script = [reply]
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    attempt = wait_until(lambda: DeliveryAttempt.objects.filter(delivery=delivery).first())
    assert attempt.error_class == "timeout" and not attempt.succeeded
    # The receiver would take 30 s; the attempt ended near TIMEOUT (2 s).
    assert attempt.duration_ms < 15_000


def test_302_is_a_failure_and_is_not_followed(cluster, receiver, make_subscription, make_delivery):
    receiver.routes = {"/hook": [Reply(302, headers={"Location": receiver.url("/elsewhere")})]}
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivery, DeliveryStatus.FAILED)
    assert delivery.attempts == 1 and delivery.last_status_code == 302
    assert receiver.received("/elsewhere") == []


def _peak_rss_kb(pgid: int) -> int:
    peak = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.getpgid(int(pid)) != pgid:
                continue
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            continue
    return peak


def test_a_30_mb_response_keeps_only_the_cap(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(200)]
    warm_subscription, warm = deliver_to(make_subscription, make_delivery, receiver, path="/warm")
    wait_for_status(warm, DeliveryStatus.SUCCEEDED)
    groups = [process.pid for process in cluster.processes]
    baseline = max(_peak_rss_kb(group) for group in groups)
    receiver.routes = {"/big": [Reply(200, stream_bytes=30 * 1024 * 1024)]}
    _, delivery = deliver_to(make_subscription, make_delivery, receiver, path="/big")
    wait_for_status(delivery, DeliveryStatus.SUCCEEDED)
    attempt = delivery.delivery_attempts.get()
    assert 0 < len(attempt.response_body.encode()) <= 20 * 1024
    assert max(_peak_rss_kb(group) for group in groups) < baseline + 15 * 1024


def test_two_clusters_never_send_a_delivery_twice(qcluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(200, delay=0.05)]
    qcluster(FAST)
    qcluster(FAST)
    subscriptions = [make_subscription(url=receiver.url(f"/{i}"), max_in_flight=4) for i in range(8)]
    deliveries = [make_delivery(subscription) for subscription in subscriptions for _ in range(5)]
    broker.enqueue_delivery(6)
    assert wait_until(
        lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == len(deliveries), timeout=60
    )
    ids = [r.headers["webhook-id"] for r in receiver.received()]
    assert sorted(ids) == sorted(d.message_id for d in deliveries)
    assert DeliveryAttempt.objects.count() == len(deliveries)


def test_resend_and_recover_send_again_with_the_same_webhook_id(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(200)]
    subscription, delivered = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivered, DeliveryStatus.SUCCEEDED)
    resend(delivered)
    assert wait_until(lambda: len(receiver.received()) == 2)
    wait_for_status(delivered, DeliveryStatus.SUCCEEDED)
    assert delivered.attempts == 2
    assert {r.headers["webhook-id"] for r in receiver.received()} == {delivered.message_id}

    receiver.routes = {"/hook": [Reply(400), Reply(400), Reply(200)]}
    since = timezone.now()
    refused = [make_delivery(subscription) for _ in range(2)]
    broker.enqueue_delivery(1)
    for delivery in refused:
        wait_for_status(delivery, DeliveryStatus.FAILED)
    assert recover(subscription, since) == 2
    for delivery in refused:
        wait_for_status(delivery, DeliveryStatus.SUCCEEDED)
        assert delivery.attempts == 2


def test_send_test_event_returns_the_attempt(receiver, make_subscription):
    subscription = make_subscription(url=receiver.url())
    attempt = send_test_event(subscription)
    assert attempt.succeeded and attempt.response_status == 200
    [request] = receiver.wait_for(1)
    assert json.loads(request.body)["type"] == "webhook.test"
    StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    assert Delivery.objects.get(subscription=subscription).status == DeliveryStatus.SUCCEEDED


def test_exhausted_after_the_schedule_and_signal_fires(cluster, receiver, make_subscription, make_delivery):
    receiver.script = [Reply(503)]
    _, delivery = deliver_to(make_subscription, make_delivery, receiver)
    wait_for_status(delivery, DeliveryStatus.EXHAUSTED)
    assert delivery.attempts == 3 and len(receiver.received()) == 3

    # The same path in this process, to observe the signal.
    exhausted = []
    signals.delivery_exhausted.connect(lambda **kw: exhausted.append(kw["delivery"].pk), weak=False, dispatch_uid="t")
    try:
        cluster.stop()
        Delivery.objects.filter(pk=delivery.pk).update(
            status=DeliveryStatus.PENDING, attempts=2, next_attempt_at=timezone.now()
        )
        assert deliver_due(time_budget=10) == 1
    finally:
        signals.delivery_exhausted.disconnect(dispatch_uid="t")
    assert exhausted == [delivery.pk]
    assert Subscription.objects.get(pk=delivery.subscription_id).consecutive_failures == 4


class ChainReceiver(Receiver):
    """Answers 200 after ``delay`` seconds; notes for each request when the response before it on
    the same keep-alive connection began (None for a connection's first request).

    A sender starts its next request only after it got that response, so a request whose previous
    response began after some moment certainly started after that moment too.
    """

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.chain: list[tuple[ReceivedRequest, float | None]] = []

    def _handle(self, handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        headers = {name.lower(): value for name, value in handler.headers.items()}
        request = ReceivedRequest(handler.command, handler.path, headers, handler.rfile.read(length), time.time())
        with self._lock:
            self.requests.append(request)
            self.chain.append((request, getattr(handler, "responding_since", None)))
        if self.delay and self._stopping.wait(self.delay):
            return
        handler.responding_since = time.time()
        try:  # one write: a split one waits for the client's delayed ACK (~40 ms) on loopback
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def chain_receiver():
    with ChainReceiver(delay=0.025) as rx:
        yield rx


def test_every_request_starting_after_a_rotation_carries_the_new_signature(
    cluster, chain_receiver, make_subscription, make_delivery
):
    subscription = make_subscription(url=chain_receiver.url(), max_in_flight=2)
    old_secret = current_secret(subscription)
    deliveries = [make_delivery(subscription) for _ in range(200)]
    broker.enqueue_delivery(2)
    chain_receiver.wait_for(40)
    new_secret = rotate_secret(subscription)
    rotated = time.time()
    # Rotated in this process while the cluster's lanes send, 25 ms per request.
    assert wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == len(deliveries))
    after = [request for request, previous in chain_receiver.chain if previous is not None and previous > rotated]
    assert len(after) >= 50
    for request in after:
        StandardWebhook(new_secret).verify(request.body, request.headers)
    for request in chain_receiver.received():
        StandardWebhook(old_secret).verify(request.body, request.headers)
    before = [r for r in chain_receiver.received() if r.received_at < rotated - 1]
    assert before and all(len(r.headers["webhook-signature"].split()) == 1 for r in before)


def no_schedules() -> int:
    """Delete django-q2's schedules (none exist on Django Tasks); how many are left."""
    if on_django_tasks():
        return 0
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    return Schedule.objects.count()


def test_a_killed_workers_lane_is_sent_by_another_worker_within_two_leases(
    qcluster, make_subscription, make_delivery, settings
):
    assert no_schedules() == 0  # no sweeper: the live worker must find the deliveries itself
    lease = 6
    overrides = {**FAST, "LEASE_SECONDS": lease, "TASK_TIME_BUDGET": 30}
    with ChainReceiver(delay=0.3) as receiver:
        subscription = make_subscription(url=receiver.url(), max_in_flight=1)
        deliveries = [make_delivery(subscription) for _ in range(40)]
        doomed = qcluster(overrides)
        broker.enqueue_delivery(1)
        receiver.wait_for(2)
        survivor = qcluster(
            {**overrides, "QUEUE": "webhooks-survivor"}, q_cluster={"cluster_name": "webhooks-survivor"}
        )
        settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "QUEUE": "webhooks-survivor"}
        broker.enqueue_delivery(1)
        # The survivor's task runs: it finds the only lane taken and waits for its lease.
        assert wait_until(lambda: survivor.ran("deliver_due"))
        receiver.delay = 0
        doomed.kill()
        killed = time.time()
        orphans = list(Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT))
        interrupted = receiver.received()[-1].headers["webhook-id"]
        assert len(orphans) > 30 and interrupted in {d.message_id for d in orphans}
        assert wait_until(
            lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == len(deliveries),
            timeout=4 * lease,
        )
        resent = {r.headers["webhook-id"]: r.received_at for r in receiver.received() if r.received_at > killed}
    # Every delivery the dead worker held went out again, same webhook-id, within two leases.
    assert set(resent) == {d.message_id for d in orphans}
    assert max(resent.values()) - killed < 2 * lease
    assert no_schedules() == 0 and not survivor.ran("sweep")
    print(f"recovery: first resend {min(resent.values()) - killed:.2f} s, last {max(resent.values()) - killed:.2f} s")


def test_first_retries_go_out_within_a_second_of_their_jittered_due_time(
    qcluster, receiver, make_subscription, make_delivery
):
    # Twelve connections at once overflow the receiver's listen backlog (5): a dropped SYN is sent
    # again after 1 s, so the connect timeout must outlast that, or a first attempt times out.
    timeouts = {"CONNECT_TIMEOUT": 5, "TIMEOUT": 5}
    qcluster({**FAST, **timeouts, "RETRY_SCHEDULE": [5, 5], "RETRY_JITTER": 0.2, "TASK_TIME_BUDGET": 20})
    paths = [f"/r{i:02d}" for i in range(12)]
    receiver.routes = {path: [Reply(503), Reply(200)] for path in paths}
    deliveries = {path: make_delivery(make_subscription(url=receiver.url(path))) for path in paths}
    broker.enqueue_delivery(1)

    def failed_once():
        rows = Delivery.objects.filter(status=DeliveryStatus.PENDING, attempts=1)
        return rows.count() == len(paths) and dict(rows.values_list("pk", "next_attempt_at"))

    due = wait_until(failed_once)
    assert due
    assert wait_until(lambda: Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count() == len(paths))
    lateness = []
    for path, delivery in deliveries.items():
        first, retry = receiver.received(path)
        assert first.headers["webhook-id"] == retry.headers["webhook-id"] == delivery.message_id
        lateness.append(retry.received_at - due[delivery.pk].timestamp())
    # Due 4 to 6 s after the first attempt (5 s +- 20 %); sent within a second of it, never early.
    assert all(0 <= late < 1 for late in lateness), lateness
    print(f"retry lateness: max {max(lateness) * 1000:.0f} ms, mean {sum(lateness) / len(lateness) * 1000:.0f} ms")

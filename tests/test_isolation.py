"""A few dead endpoints must not hold up everyone else's webhooks.

Drives the real engine in-process: several worker threads run ``lanes.deliver_due`` against
loopback receivers, while a sampler thread watches the deliveries and subscriptions in the
database.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest
from django.conf import settings
from django.db import close_old_connections, connections
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone

from django_webhooks.delivery import lanes
from django_webhooks.models import Delivery, DeliveryStatus, Subscription
from tests.receiver import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FAST_ENDPOINTS = 15
SLOW_ENDPOINTS = 5
EVENTS_PER_ENDPOINT = 8
WORKERS = 4
CAP = 2
THRESHOLD = 5

TEST_SETTINGS = {
    # Short, yet long enough for a loopback 200 on a busy machine.
    "TIMEOUT": 2.5,
    "CONNECT_TIMEOUT": 2.5,
    "MAX_IN_FLIGHT_PER_SUBSCRIPTION": CAP,
    "CIRCUIT_BREAKER_THRESHOLD": THRESHOLD,
    "CIRCUIT_BREAKER_COOLDOWN": 2,
    "CIRCUIT_BREAKER_MAX_COOLDOWN": 4,
    "RETRY_SCHEDULE": [1] * 30,
    "RETRY_JITTER": 0,
    "CLAIM_BATCH_SIZE": 10,
    "SEND_CONCURRENCY": 8,
}


class Workers:
    """``WORKERS`` threads delivering until stopped, as django-q2 workers would."""

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(WORKERS)]

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                if not lanes.deliver_due(time_budget=1.0):
                    self.stopping.wait(0.05)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            connections.close_all()

    def __enter__(self) -> Workers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)


class Sampler:
    """Polls how many lanes (concurrent requests) each slow subscription has in flight and whose
    circuit is open."""

    def __init__(self, slow_ids: list[int]) -> None:
        self.slow_ids = slow_ids
        self.most_in_flight: dict[int, int] = defaultdict(int)
        self.seen_open: set[int] = set()
        self.samples = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stopping.is_set():
                close_old_connections()
                in_flight = (
                    Delivery.objects.filter(subscription_id__in=self.slow_ids, status=DeliveryStatus.IN_FLIGHT)
                    .values("subscription_id")
                    .annotate(n=Count("lease_token", distinct=True))
                    .order_by()
                )
                for row in in_flight:
                    sid = row["subscription_id"]
                    self.most_in_flight[sid] = max(self.most_in_flight[sid], row["n"])
                self.seen_open.update(
                    Subscription.objects.filter(
                        pk__in=self.slow_ids, circuit_open_until__gt=timezone.now()
                    ).values_list("pk", flat=True)
                )
                self.samples += 1
                self.stopping.wait(0.02)
        finally:
            connections.close_all()

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def statuses(subscription_ids: list[int]) -> dict[str, int]:
    rows = (
        Delivery.objects.filter(subscription_id__in=subscription_ids)
        .values("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["status"]: row["n"] for row in rows}


def test_slow_endpoints_do_not_hold_up_the_others(receiver, make_subscription, make_delivery):
    receiver.script = [Reply(200)]
    receiver.routes = {"/slow/": [Reply(delay=60)]}
    with override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **TEST_SETTINGS}):
        fast = [make_subscription(receiver.url(f"/fast/{i}")) for i in range(FAST_ENDPOINTS)]
        slow = [make_subscription(receiver.url(f"/slow/{i}")) for i in range(SLOW_ENDPOINTS)]
        for _ in range(EVENTS_PER_ENDPOINT):
            for subscription in slow + fast:
                make_delivery(subscription)
        fast_ids, slow_ids = [s.pk for s in fast], [s.pk for s in slow]
        fast_total = FAST_ENDPOINTS * EVENTS_PER_ENDPOINT

        with Sampler(slow_ids) as sampler, Workers() as workers:
            fast_done = wait_until(lambda: statuses(fast_ids) == {DeliveryStatus.SUCCEEDED: fast_total}, timeout=40)

            # The fast endpoints got everything while the slow ones were still timing out.
            assert fast_done, statuses(fast_ids)
            fast_message_ids = set(
                Delivery.objects.filter(subscription_id__in=fast_ids).values_list("message_id", flat=True)
            )
            assert {r.headers["webhook-id"] for r in receiver.received("/fast/")} == fast_message_ids
            slow_now = statuses(slow_ids)
            assert slow_now.get(DeliveryStatus.SUCCEEDED, 0) == 0
            assert slow_now.get(DeliveryStatus.PENDING, 0) + slow_now.get(DeliveryStatus.IN_FLIGHT, 0) == (
                SLOW_ENDPOINTS * EVENTS_PER_ENDPOINT
            ), "no slow delivery was given up on: the circuit keeps their retry budget"
            assert {r.path for r in receiver.received("/slow/")} == {f"/slow/{i}" for i in range(SLOW_ENDPOINTS)}
            assert not Subscription.objects.filter(pk__in=fast_ids, consecutive_failures__gt=0).exists()

            # The slow endpoints keep failing until each circuit opens, retry budgets untouched.
            all_opened = wait_until(lambda: sampler.seen_open == set(slow_ids), timeout=30)
            assert all_opened, f"circuits seen open: {sampler.seen_open}, slow: {slow_ids}"
            assert DeliveryStatus.EXHAUSTED not in statuses(slow_ids)
            assert all(s.consecutive_failures >= THRESHOLD for s in Subscription.objects.filter(pk__in=slow_ids))

            # The slow endpoints recover: after the cool-down one success closes each circuit.
            receiver.routes = {"/slow/": [Reply(200)]}
            all_done = wait_until(
                lambda: statuses(slow_ids) == {DeliveryStatus.SUCCEEDED: SLOW_ENDPOINTS * EVENTS_PER_ENDPOINT},
                timeout=30,
            )

        assert not workers.errors, workers.errors
        assert all_done, statuses(slow_ids)
        assert sampler.samples > 10
        assert max(sampler.most_in_flight.values()) <= CAP, dict(sampler.most_in_flight)
        assert set(sampler.most_in_flight) == set(slow_ids)
        for subscription in Subscription.objects.filter(pk__in=slow_ids):
            assert subscription.consecutive_failures == 0
            assert subscription.circuit_open_until is None and not subscription.circuit_is_open()
            assert subscription.last_success_at is not None and subscription.enabled

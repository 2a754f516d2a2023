"""The delivery engine (django_webhooks/delivery/lanes.py): lanes sent over loopback HTTP and recorded.

Claiming itself (leases, caps, circuit, ordered mode, rate limit) is tested in test_claiming.py.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.test import override_settings
from django.utils import timezone
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks import signals
from django_webhooks.delivery import claiming, lanes
from django_webhooks.delivery.endpoints import Endpoints
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription
from django_webhooks.secret_store import current_secret
from tests.receiver import Reply
from tests.ssrf_cases import FORBIDDEN_ADDRESSES, ODD_SPELLINGS, literal_url

pytestmark = pytest.mark.django_db


def deliver_now() -> int:
    """One delivery task as a worker runs it, with a budget shorter than the first retry's wait."""
    return lanes.deliver_due(time_budget=1)


@pytest.fixture
def subscription(make_subscription):
    return make_subscription()


def test_deliver_signs_sends_and_records(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url("/hook"), headers={"X-Tenant": "acme"})
    delivery = make_delivery(subscription, data={"id": 7})
    succeeded = []
    signals.delivery_succeeded.connect(lambda **kw: succeeded.append(kw["delivery"].pk), weak=False, dispatch_uid="t")
    try:
        assert deliver_now() == 1
    finally:
        signals.delivery_succeeded.disconnect(dispatch_uid="t")
    [request] = receiver.wait_for(1)
    assert request.body == delivery.event.body.encode()
    assert json.loads(request.body)["data"] == {"id": 7}
    assert request.headers["webhook-id"] == delivery.message_id
    assert request.headers["x-tenant"] == "acme"
    StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    stored = DeliveryAttempt.objects.get()
    assert stored.succeeded and stored.response_status == 200 and stored.attempt_number == 1
    assert stored.request_headers["webhook-signature"] == "v1,<redacted>"
    assert request.headers["webhook-signature"] not in json.dumps(stored.request_headers)
    assert stored.request_headers["webhook-id"] == delivery.message_id
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 1
    assert delivery.lease_expires_at is None and delivery.completed_at is not None
    assert succeeded == [delivery.pk]


def test_deliver_schedules_a_retry_on_500(receiver, make_subscription, make_delivery):
    receiver.script = [Reply(500, body=b"oops")]
    subscription = make_subscription(url=receiver.url())
    delivery = make_delivery(subscription)
    failed = []
    signals.delivery_failed.connect(lambda **kw: failed.append(kw["next_attempt_at"]), weak=False, dispatch_uid="t")
    try:
        assert deliver_now() == 1
    finally:
        signals.delivery_failed.disconnect(dispatch_uid="t")
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 1
    assert delivery.last_status_code == 500 and delivery.last_error == "HTTP 500"
    assert timezone.now() + timedelta(seconds=3) < delivery.next_attempt_at < timezone.now() + timedelta(seconds=7)
    assert failed == [delivery.next_attempt_at]
    assert DeliveryAttempt.objects.get().response_body == "oops"
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1


def test_410_fails_the_delivery_and_disables_the_subscription(receiver, make_subscription, make_delivery):
    receiver.script = [Reply(410)]
    subscription = make_subscription(url=receiver.url())
    delivery = make_delivery(subscription)
    disabled, exhausted = [], []
    signals.subscription_disabled.connect(lambda **kw: disabled.append(kw["reason"]), weak=False, dispatch_uid="t")
    signals.delivery_exhausted.connect(lambda **kw: exhausted.append(kw["delivery"].pk), weak=False, dispatch_uid="t")
    try:
        assert deliver_now() == 1
    finally:
        signals.subscription_disabled.disconnect(dispatch_uid="t")
        signals.delivery_exhausted.disconnect(dispatch_uid="t")
    delivery.refresh_from_db()
    subscription.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED
    assert not subscription.enabled and "410" in subscription.disabled_reason
    assert len(disabled) == 1 and exhausted == [delivery.pk]


def test_a_delivery_whose_lease_was_taken_over_keeps_its_new_state(receiver, subscription, make_delivery):
    subscription.url = receiver.url()
    subscription.save()
    delivery = make_delivery(subscription)
    [lane] = claiming.claim_lanes(1)
    # Our lease expired and another worker's lane holds the delivery now.
    other_lease = timezone.now() + timedelta(minutes=2)
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires_at=other_lease, lease_token="other")
    lanes.finish_lane(lane, sent_lane(lane))
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.IN_FLIGHT and delivery.lease_expires_at == other_lease
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 1


def test_blocked_targets_fail_without_retry(make_subscription, make_delivery):
    subscription = make_subscription(url="http://169.254.169.254/latest/meta-data")
    delivery = make_delivery(subscription)
    with override_settings(DJANGO_WEBHOOKS={"ALLOW_LOOPBACK": False, "REQUIRE_HTTPS": False}):
        assert deliver_now() == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_class == "blocked_target"
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED


@pytest.mark.parametrize("url", [literal_url(address) for address, _ in FORBIDDEN_ADDRESSES] + ODD_SPELLINGS)
def test_every_forbidden_address_form_is_blocked_at_delivery_time(make_subscription, make_delivery, url):
    # Stored without validation, as if the rules changed after the subscription was saved.
    delivery = make_delivery(make_subscription(url=url))
    with override_settings(DJANGO_WEBHOOKS={"ALLOW_LOOPBACK": False, "REQUIRE_HTTPS": False}):
        assert deliver_now() == 1
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_class == "blocked_target" and attempt.response_status is None
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.FAILED and delivery.attempts == 1


def test_deliver_due_drains_everything_due(receiver, make_subscription, make_delivery):
    subscriptions = [make_subscription(url=receiver.url(f"/{i}")) for i in range(3)]
    for subscription in subscriptions:
        for _ in range(4):
            make_delivery(subscription)
    assert lanes.deliver_due(time_budget=60) == 12
    assert len(receiver.wait_for(12)) == 12
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_deliver_due_waits_for_a_retry_due_within_seconds(settings, receiver, make_subscription, make_delivery):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "RETRY_SCHEDULE": [0.2], "RETRY_JITTER": 0}
    receiver.script = [Reply(503), Reply(200)]
    delivery = make_delivery(make_subscription(url=receiver.url()))
    assert lanes.deliver_due(time_budget=10) == 2
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED and delivery.attempts == 2
    ids = {r.headers["webhook-id"] for r in receiver.wait_for(2)}
    assert ids == {delivery.message_id}


@pytest.mark.django_db(transaction=True)
def test_slow_endpoints_do_not_hold_back_the_others(settings, receiver, make_subscription, make_delivery):
    """20 subscriptions, 5 of which never answer: the 15 get everything while the 5 time out."""
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "TIMEOUT": 1,
        "CONNECT_TIMEOUT": 0.5,
        "LEASE_SECONDS": 10,
        "RETRY_SCHEDULE": [0.5] * 20,
        "RETRY_JITTER": 0,
        "CIRCUIT_BREAKER_THRESHOLD": 1000,
    }
    receiver.routes = {"/slow": [Reply(200, delay=30)]}
    slow = [make_subscription(url=receiver.url(f"/slow/{i}")) for i in range(5)]
    fast = [make_subscription(url=receiver.url(f"/fast/{i}")) for i in range(15)]
    for subscription in slow + fast:
        for _ in range(4):
            make_delivery(subscription)

    def work():
        try:
            lanes.deliver_due(time_budget=60)
        finally:
            connection.close()

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    fast_ids = [s.pk for s in fast]
    most_in_flight = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        in_flight = Delivery.objects.filter(subscription__in=slow, status=DeliveryStatus.IN_FLIGHT)
        per_subscription = (
            in_flight.values("subscription")
            .annotate(lanes=Count("lease_token", distinct=True))
            .values_list("lanes", flat=True)
        )
        most_in_flight = max([most_in_flight, *per_subscription])
        if Delivery.objects.filter(subscription__in=fast_ids, status=DeliveryStatus.SUCCEEDED).count() == 60:
            break
        time.sleep(0.05)
    assert Delivery.objects.filter(subscription__in=fast_ids, status=DeliveryStatus.SUCCEEDED).count() == 60
    # The slow ones are still at it: none of their deliveries is done.
    assert not Delivery.objects.filter(subscription__in=slow, status=DeliveryStatus.SUCCEEDED).exists()
    timed_out = Delivery.objects.filter(subscription__in=slow, delivery_attempts__error_class="timeout")
    deadline = time.monotonic() + 30
    while not timed_out.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert timed_out.exists()
    # At most the cap of concurrent requests (lanes) to each slow endpoint.
    assert 0 < most_in_flight <= 2
    for subscription in slow:
        Subscription.objects.filter(pk=subscription.pk).update(enabled=False)
    worker.join(timeout=30)


def test_ordered_subscription_holds_back_later_events_until_the_first_succeeds(
    settings, receiver, make_subscription, make_delivery
):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "RETRY_SCHEDULE": [0.2, 0.2], "RETRY_JITTER": 0}
    receiver.script = [Reply(500), Reply(200)]
    subscription = make_subscription(url=receiver.url(), ordered=True, max_in_flight=5)
    first, second, third = (make_delivery(subscription) for _ in range(3))
    assert lanes.deliver_due(time_budget=20) == 4
    sent = [r.headers["webhook-id"] for r in receiver.wait_for(4)]
    assert sent == [first.message_id, first.message_id, second.message_id, third.message_id]
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def sent_lane(lane, stop_at=None):
    endpoints = Endpoints()
    endpoints.load([lane.subscription], time.monotonic())
    return lanes.send_lane(lane, endpoints, time.monotonic() + 60 if stop_at is None else stop_at)


def test_a_lane_sends_in_order_and_records_in_bulk(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url())
    deliveries = [make_delivery(subscription) for _ in range(5)]
    succeeded = []
    signals.delivery_succeeded.connect(lambda **kw: succeeded.append(kw["delivery"].pk), weak=False, dispatch_uid="t")
    try:
        [lane] = claiming.claim_lanes(1)
        lanes.finish_lane(lane, sent_lane(lane))
    finally:
        signals.delivery_succeeded.disconnect(dispatch_uid="t")
    assert [r.headers["webhook-id"] for r in receiver.wait_for(5)] == [d.message_id for d in deliveries]
    assert succeeded == [d.pk for d in deliveries]
    rows = Delivery.objects.order_by("pk")
    assert {(d.status, d.attempts, d.lease_token, d.lease_expires_at) for d in rows} == {
        (DeliveryStatus.SUCCEEDED, 1, "", None)
    }
    assert DeliveryAttempt.objects.filter(succeeded=True).count() == 5
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 0 and subscription.last_success_at is not None


@pytest.mark.parametrize("reply", [Reply(503), Reply(429, headers={"Retry-After": "1"})], ids=["5xx", "429"])
def test_an_unwell_endpoint_stops_the_lane_and_frees_the_rest_untouched(
    receiver, make_subscription, make_delivery, reply
):
    receiver.script = [Reply(200), reply, Reply(200)]
    subscription = make_subscription(url=receiver.url())
    first, second, *rest = [make_delivery(subscription) for _ in range(5)]
    due_before = {d.pk: d.next_attempt_at for d in rest}
    [lane] = claiming.claim_lanes(1)
    sent = sent_lane(lane)
    assert [outcome.delivery.pk for outcome in sent] == [first.pk, second.pk]
    lanes.finish_lane(lane, sent)
    assert len(receiver.received()) == 2
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == DeliveryStatus.SUCCEEDED
    assert second.status == DeliveryStatus.PENDING and second.attempts == 1
    for delivery in Delivery.objects.filter(pk__in=due_before):
        assert delivery.status == DeliveryStatus.PENDING and delivery.attempts == 0
        assert delivery.lease_token == "" and delivery.lease_expires_at is None
        assert delivery.next_attempt_at == due_before[delivery.pk]
    assert not DeliveryAttempt.objects.filter(delivery__in=rest).exists()
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1
    # The endpoint is failing now: the next lane is a probe of one.
    [probe] = claiming.claim_lanes(1)
    assert [d.pk for d in probe.deliveries] == [rest[0].pk]


def test_a_lane_starts_no_request_once_its_lease_is_not_renewed(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url())
    first, *rest = [make_delivery(subscription) for _ in range(3)]
    [lane] = claiming.claim_lanes(1)
    with override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "LEASE_SECONDS": 30}):
        # Renewed every 5 s while the task runs; 20 s without a renewal means it stopped.
        assert lanes._lease_stop_at(lane) == pytest.approx(lane.claimed_at + 20)
        claiming.renew_leases([lane])
        assert lanes._lease_stop_at(lane) == pytest.approx(time.monotonic() + 20, abs=1)
    # The budget is spent: the first request goes out, no other.
    sent = sent_lane(lane, stop_at=time.monotonic())
    assert [outcome.delivery.pk for outcome in sent] == [first.pk]
    lanes.finish_lane(lane, sent)
    assert len(receiver.wait_for(1)) == 1
    assert Delivery.objects.get(pk=first.pk).status == DeliveryStatus.SUCCEEDED
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in rest]):
        assert (delivery.status, delivery.attempts, delivery.lease_token) == (DeliveryStatus.PENDING, 0, "")


def test_the_bulk_success_update_spares_a_delivery_taken_over(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url())
    deliveries = [make_delivery(subscription) for _ in range(3)]
    [lane] = claiming.claim_lanes(1)
    taken = deliveries[1]
    # Our lease expired meanwhile and another worker's lane holds this one now.
    Delivery.objects.filter(pk=taken.pk).update(lease_token="other")
    succeeded = []
    signals.delivery_succeeded.connect(lambda **kw: succeeded.append(kw["delivery"].pk), weak=False, dispatch_uid="t")
    try:
        lanes.finish_lane(lane, sent_lane(lane))
    finally:
        signals.delivery_succeeded.disconnect(dispatch_uid="t")
    assert succeeded == [deliveries[0].pk, deliveries[2].pk]
    taken.refresh_from_db()
    assert taken.status == DeliveryStatus.IN_FLIGHT and taken.lease_token == "other" and taken.attempts == 0
    assert DeliveryAttempt.objects.count() == 3
    assert set(Delivery.objects.exclude(pk=taken.pk).values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_a_lane_that_waited_too_long_for_a_thread_sends_nothing(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url())
    deliveries = [make_delivery(subscription) for _ in range(2)]
    [lane] = claiming.claim_lanes(1)
    lane.claimed_at -= 3600
    sent = sent_lane(lane)
    assert sent == []
    lanes.finish_lane(lane, sent)
    assert receiver.received() == []
    for delivery in Delivery.objects.filter(pk__in=[d.pk for d in deliveries]):
        assert (delivery.status, delivery.attempts, delivery.lease_token) == (DeliveryStatus.PENDING, 0, "")


def test_rate_limited_subscriptions_are_paced_while_draining(settings, receiver, make_subscription, make_delivery):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 2}
    subscription = make_subscription(url=receiver.url(), rate_limit=2, max_in_flight=5)
    for _ in range(6):
        make_delivery(subscription)
    delivered = lanes.deliver_due(time_budget=0.5)
    # Two per second: the first lane of two goes out, the rest waits for its pace.
    assert delivered == 2
    assert len(receiver.received()) == 2
    assert Delivery.objects.filter(status=DeliveryStatus.PENDING, attempts=0).count() == 4


def in_thread(work):
    """Run ``work`` in a thread with its own database connection (as a worker would); join it."""
    errors: list[BaseException] = []

    def run():
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


@pytest.mark.django_db(transaction=True)
def test_a_lane_renews_its_lease_while_it_works(settings, receiver, make_subscription, make_delivery):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "LEASE_SECONDS": 4, "TIMEOUT": 1}
    receiver.script = [Reply(200, delay=0.4)]
    subscription = make_subscription(url=receiver.url())
    deliveries = [make_delivery(subscription) for _ in range(14)]
    worker, errors = in_thread(lambda: lanes.deliver_due(time_budget=30))
    leases = set()
    while worker.is_alive():
        leases.update(
            Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT).values_list("lease_token", "lease_expires_at")
        )
        time.sleep(0.1)
    worker.join()
    assert not errors, errors
    # One lane sent all 14 in ~6 s, longer than its 4 s lease: the lease was renewed, never lost.
    assert [r.headers["webhook-id"] for r in receiver.received()] == [d.message_id for d in deliveries]
    assert len({token for token, _ in leases}) == 1
    first, last = min(at for _, at in leases), max(at for _, at in leases)
    assert last - first > timedelta(seconds=2)
    assert set(Delivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SUCCEEDED, 1)}


@pytest.mark.parametrize("ordered", [False, True], ids=["unordered", "ordered"])
def test_a_dead_workers_deliveries_go_out_once_its_lease_expires(receiver, make_subscription, make_delivery, ordered):
    subscription = make_subscription(url=receiver.url(), ordered=ordered, max_in_flight=1)
    expires = timezone.now() + timedelta(seconds=1)
    # A worker died holding the first delivery: nobody renews its lease any more.
    orphan = make_delivery(subscription, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=expires, lease_token="dead")
    waiting = make_delivery(subscription)
    # Nothing is claimable at first (the cap, or the order); the task waits for the lease, no sweep.
    assert lanes.deliver_due(time_budget=10) == 2
    requests = receiver.wait_for(2)
    assert {r.headers["webhook-id"] for r in requests} == {orphan.message_id, waiting.message_id}
    if ordered:
        assert [r.headers["webhook-id"] for r in requests] == [orphan.message_id, waiting.message_id]
        assert requests[0].received_at >= expires.timestamp()
    assert set(Delivery.objects.values_list("status", "attempts")) == {(DeliveryStatus.SUCCEEDED, 1)}


def another_workers_lane(make_delivery, subscription: Subscription, token: str) -> Delivery:
    """A delivery in flight in a lane of another worker, its lease minutes from expiring."""
    return make_delivery(
        subscription,
        status=DeliveryStatus.IN_FLIGHT,
        lease_expires_at=timezone.now() + timedelta(minutes=5),
        lease_token=token,
    )


def test_a_live_lane_of_another_worker_is_left_alone(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url(), max_in_flight=1)
    held = another_workers_lane(make_delivery, subscription, "alive")
    make_delivery(subscription)
    assert lanes.deliver_due(time_budget=0.5) == 0
    assert receiver.received() == []
    held.refresh_from_db()
    assert (held.status, held.lease_token) == (DeliveryStatus.IN_FLIGHT, "alive")


@pytest.mark.django_db(transaction=True)
def test_an_idle_task_claims_a_lane_as_soon_as_another_worker_frees_one(receiver, make_subscription, make_delivery):
    """All of the subscription's lanes are another worker's: the task keeps trying while deliveries
    are due, and sends once the lane is free, long before that lane's lease would have expired."""
    subscription = make_subscription(url=receiver.url(), max_in_flight=1)
    other = another_workers_lane(make_delivery, subscription, "other-worker")
    waiting = make_delivery(subscription)
    freed_at: list[float] = []

    def other_worker_finishes():
        try:
            time.sleep(0.5)
            Delivery.objects.filter(pk=other.pk).update(
                status=DeliveryStatus.SUCCEEDED, lease_expires_at=None, lease_token=""
            )
            freed_at.append(time.time())
        finally:
            connection.close()

    finisher = threading.Thread(target=other_worker_finishes, daemon=True)
    finisher.start()
    assert lanes.deliver_due(time_budget=10) == 1
    finisher.join(timeout=10)
    [request] = receiver.received()
    assert request.headers["webhook-id"] == waiting.message_id and request.received_at >= freed_at[0]


def test_past_its_first_seconds_a_task_keeps_to_its_share_of_a_subscriptions_lanes(
    settings, monkeypatch, receiver, make_subscription, make_delivery
):
    """Two workers run: the task takes one of the subscription's two lanes and leaves the other
    to the second worker, so its requests go one after another, never two at once."""
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 1}
    monkeypatch.setattr(lanes, "SHARE_LANES_SECONDS", 0.0)
    monkeypatch.setattr(lanes.broker, "workers", lambda: 2)
    receiver.routes = {"/hook": [Reply(200, delay=0.2)]}
    subscription = make_subscription(url=receiver.url("/hook"), max_in_flight=2)
    for _ in range(6):
        make_delivery(subscription)
    assert lanes.deliver_due(time_budget=30) == 6
    arrivals = sorted(request.received_at for request in receiver.received("/hook"))
    # Each request starts after the answer to the one before, which the receiver held for 0.2 s.
    assert all(later - earlier >= 0.2 for earlier, later in zip(arrivals, arrivals[1:], strict=False))


@pytest.mark.django_db(transaction=True)
def test_a_running_lane_follows_url_and_header_changes_and_stops_when_disabled(
    settings, receiver, make_subscription, make_delivery
):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 20}
    receiver.script = [Reply(200, delay=0.05)]
    subscription = make_subscription(url=receiver.url("/old"), headers={"X-Tenant": "old"}, max_in_flight=1)
    deliveries = [make_delivery(subscription) for _ in range(100)]
    worker, errors = in_thread(lambda: lanes.deliver_due(time_budget=60))
    receiver.wait_for(5)
    Subscription.objects.filter(pk=subscription.pk).update(url=receiver.url("/new"), headers={"X-Tenant": "new"})
    receiver.wait_for(5, path="/new")
    Subscription.objects.filter(pk=subscription.pk).update(enabled=False)
    sent_before_disabling = len(receiver.received())
    worker.join(timeout=60)
    assert not errors, errors
    requests = receiver.received()
    assert {(r.path, r.headers["x-tenant"]) for r in requests} == {("/old", "old"), ("/new", "new")}
    # The lane stopped within a batch of its disabling (sender copies are at most 0.5 s old).
    assert len(requests) - sent_before_disabling < 20
    attempts = {a.delivery.message_id: a.url for a in DeliveryAttempt.objects.select_related("delivery")}
    assert attempts == {r.headers["webhook-id"]: receiver.url(r.path) for r in requests}
    untouched = Delivery.objects.filter(pk__in=[d.pk for d in deliveries], attempts=0)
    assert untouched.count() == len(deliveries) - len(requests)
    assert set(untouched.values_list("status", "lease_token")) == {(DeliveryStatus.PENDING, "")}


class FakePoller:
    """Records when it is polled; its ``found`` callback says (and makes) new work."""

    interval = 0.05

    def __init__(self, found=lambda polls: False, alive_for: int = 0) -> None:
        self.found = found
        self.alive_for = alive_for
        self.polls: list[float] = []

    def poll(self) -> bool:
        self.polls.append(time.time())
        return self.found(len(self.polls))

    def keep_alive(self) -> bool:
        return len(self.polls) < self.alive_for


def test_deliver_due_polls_while_sending_claims_what_a_poll_found_and_keeps_alive(
    receiver, make_subscription, make_delivery
):
    receiver.routes = {"/slow": [Reply(200, delay=0.5)]}
    slow = make_delivery(make_subscription(url=receiver.url("/slow")))
    fast = make_subscription(url=receiver.url("/fast"))
    made = []

    def found(polls):
        if polls == 3:  # the poll fans out a new event
            made.append(make_delivery(fast))
            return True
        return False

    poller = FakePoller(found, alive_for=40)
    assert lanes.deliver_due(time_budget=30, poller=poller) == 2
    [slow_request] = receiver.received("/slow")
    [fast_request] = receiver.received("/fast")
    assert fast_request.headers["webhook-id"] == made[0].message_id
    assert fast_request.received_at > poller.polls[2]
    # Polled while the slow request was in flight, then kept polling with nothing due until
    # keep_alive() said no more: it returned right after that poll, long before its budget.
    assert sum(slow_request.received_at < at < slow_request.received_at + 0.5 for at in poller.polls) >= 2
    assert len(poller.polls) == 40
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}
    assert slow.pk != made[0].pk


def test_deliver_due_polls_while_it_waits_for_a_retry(receiver, make_subscription, make_delivery):
    due = timezone.now() + timedelta(seconds=1)
    retry = make_delivery(make_subscription(url=receiver.url()), attempts=1, next_attempt_at=due)
    poller = FakePoller()
    assert lanes.deliver_due(time_budget=10, poller=poller) == 1
    [request] = receiver.received()
    assert request.headers["webhook-id"] == retry.message_id and request.received_at >= due.timestamp()
    assert sum(at < request.received_at for at in poller.polls) >= 5

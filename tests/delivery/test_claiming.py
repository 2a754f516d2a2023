"""Claiming lanes (django_webhooks/delivery/claiming.py): leases, caps, circuit, ordered mode, rate limit."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_webhooks import conf
from django_webhooks.delivery import claiming
from django_webhooks.models import Delivery, DeliveryStatus, Subscription

pytestmark = pytest.mark.django_db


def claimed(max_lanes=50, **options) -> list[Delivery]:
    """What one claim leased, lanes flattened."""
    return [delivery for lane in claiming.claim_lanes(max_lanes, **options) for delivery in lane.deliveries]


def claimed_ids(max_lanes=50) -> set[int]:
    return {delivery.pk for delivery in claimed(max_lanes)}


@pytest.fixture
def subscription(make_subscription):
    return make_subscription()


def test_claim_leases_due_deliveries(subscription, make_delivery):
    due = make_delivery(subscription)
    later = make_delivery(subscription, next_attempt_at=timezone.now() + timedelta(minutes=5))
    before = timezone.now()
    batch = claimed(10)
    assert [d.pk for d in batch] == [due.pk]
    due.refresh_from_db()
    assert due.status == DeliveryStatus.IN_FLIGHT
    lease = timedelta(seconds=conf.DEFAULTS["LEASE_SECONDS"])
    assert before + lease <= due.lease_expires_at <= timezone.now() + lease
    later.refresh_from_db()
    assert later.status == DeliveryStatus.PENDING
    assert claimed_ids() == set()


def test_claim_skips_disabled_subscriptions_and_open_circuits(make_subscription, make_delivery):
    disabled = make_subscription(enabled=False)
    tripped = make_subscription(circuit_open_until=timezone.now() + timedelta(minutes=1))
    cooled = make_subscription(circuit_open_until=timezone.now() - timedelta(seconds=1))
    make_delivery(disabled)
    waiting = make_delivery(tripped)
    ready = make_delivery(cooled)
    assert claimed_ids() == {ready.pk}
    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.PENDING and waiting.attempts == 0


def lanes_of(subscription) -> int:
    return claiming.lanes_in_use([subscription.pk]).get(subscription.pk, 0)


@override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 2})
def test_the_in_flight_cap_limits_lanes_not_claimed_rows(make_subscription, make_delivery):
    default_cap = make_subscription()
    wide = make_subscription(max_in_flight=3)
    for _ in range(6):
        make_delivery(default_cap)
        make_delivery(wide)
    rounds = []
    for _ in range(4):
        claimed = claiming.claim_lanes(10)
        rounds.append(sorted((lane.subscription.pk, len(lane.deliveries)) for lane in claimed))
    assert rounds == [
        [(default_cap.pk, 2), (wide.pk, 2)],
        [(default_cap.pk, 2), (wide.pk, 2)],
        [(wide.pk, 2)],
        [],
    ]
    assert (lanes_of(default_cap), lanes_of(wide)) == (2, 3)
    assert Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT).values("lease_token").distinct().count() == 5


@override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "MAX_IN_FLIGHT_PER_SUBSCRIPTION": 1})
def test_in_flight_cap_default_comes_from_the_setting(subscription, make_delivery):
    for _ in range(3):
        make_delivery(subscription)
    assert len(claimed_ids()) == 3
    make_delivery(subscription)
    assert claimed_ids() == set()


def test_a_lane_takes_its_deliveries_in_due_order_up_to_the_batch_size(subscription, make_delivery):
    now = timezone.now()
    late = make_delivery(subscription, next_attempt_at=now - timedelta(minutes=1))
    early = [make_delivery(subscription, next_attempt_at=now - timedelta(hours=1)) for _ in range(50)]
    [lane] = claiming.claim_lanes(5)
    assert [d.pk for d in lane.deliveries] == [d.pk for d in early]
    assert {d.lease_token for d in lane.deliveries} == {lane.token}
    late.refresh_from_db()
    assert late.status == DeliveryStatus.PENDING


def test_a_busy_subscription_does_not_starve_the_others(make_subscription, make_delivery):
    busy = make_subscription(max_in_flight=100)
    for _ in range(60):
        make_delivery(busy, next_attempt_at=timezone.now() - timedelta(hours=1))
    quiet = make_subscription()
    late = make_delivery(quiet)
    at_cap = make_subscription()
    for token in ("a", "b"):
        make_delivery(
            at_cap,
            status=DeliveryStatus.IN_FLIGHT,
            lease_expires_at=timezone.now() + timedelta(minutes=1),
            lease_token=token,
        )
    make_delivery(at_cap, next_attempt_at=timezone.now() - timedelta(days=1))
    claimed = claiming.claim_lanes(10)
    assert {lane.subscription.pk: len(lane.deliveries) for lane in claimed} == {busy.pk: 50, quiet.pk: 1}
    assert claimed[1].deliveries[0].pk == late.pk


def test_failing_and_slow_subscriptions_get_lanes_of_one(make_subscription, make_delivery):
    failing = make_subscription(consecutive_failures=1)
    slow = make_subscription()
    healthy = make_subscription()
    for subscription in (failing, slow, healthy):
        for _ in range(3):
            make_delivery(subscription)
    claimed = claiming.claim_lanes(10, slow={slow.pk})
    assert {lane.subscription.pk: len(lane.deliveries) for lane in claimed} == {
        failing.pk: 1,
        slow.pk: 1,
        healthy.pk: 3,
    }
    assert {lane.subscription.pk for lane in claimed if lane.suspect} == {failing.pk, slow.pk}
    assert {lane.subscription.pk for lane in claiming.claim_lanes(10, slow={slow.pk}, exclude_suspect=True)} == set()
    assert {lane.subscription.pk for lane in claiming.claim_lanes(10, slow={slow.pk})} == {failing.pk, slow.pk}


@pytest.mark.django_db(transaction=True)
@override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "CLAIM_BATCH_SIZE": 1})
def test_concurrent_claimers_never_exceed_the_cap(subscription, make_delivery):
    for _ in range(30):
        make_delivery(subscription)
    claimers = 6
    barrier = threading.Barrier(claimers)
    claimed: list[int] = []
    errors: list[BaseException] = []

    def claim():
        try:
            barrier.wait(timeout=10)
            for _ in range(5):
                claimed.extend(d.pk for lane in claiming.claim_lanes(1) for d in lane.deliveries)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len(claimed) == len(set(claimed)) == 2
    assert lanes_of(subscription) == 2


def test_ordered_subscription_sends_only_its_oldest_open_delivery(make_subscription, make_delivery):
    subscription = make_subscription(ordered=True, max_in_flight=5)
    first, second, third = (make_delivery(subscription) for _ in range(3))
    assert claimed_ids() == {first.pk}
    # The first failed and waits for its retry: nothing overtakes it.
    Delivery.objects.filter(pk=first.pk).update(
        status=DeliveryStatus.PENDING, attempts=1, next_attempt_at=timezone.now() + timedelta(minutes=5)
    )
    assert claimed_ids() == set()
    Delivery.objects.filter(pk=first.pk).update(status=DeliveryStatus.EXHAUSTED)
    assert claimed_ids() == {second.pk}
    Delivery.objects.filter(pk=second.pk).update(status=DeliveryStatus.SUCCEEDED)
    assert claimed_ids() == {third.pk}


def test_rate_limit_paces_claims(make_subscription, make_delivery):
    subscription = make_subscription(rate_limit=1, max_in_flight=10)
    for _ in range(3):
        make_delivery(subscription)
    assert len(claimed_ids()) == 1
    subscription.refresh_from_db()
    assert timezone.now() < subscription.next_send_at <= timezone.now() + timedelta(seconds=1)
    assert claimed_ids() == set()
    Subscription.objects.filter(pk=subscription.pk).update(next_send_at=timezone.now() - timedelta(seconds=1))
    assert len(claimed_ids()) == 1


def test_expired_leases_return_to_pending_with_the_same_message_id(subscription, make_delivery):
    delivery = make_delivery(subscription)
    claimed(1)
    assert claiming.release_expired_leases() == 0
    Delivery.objects.filter(pk=delivery.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert claiming.release_expired_leases() == 1
    reclaimed = claimed(1)
    assert [d.message_id for d in reclaimed] == [delivery.message_id]


def test_expired_leases_do_not_count_against_the_cap(subscription, make_delivery):
    for _ in range(2):
        make_delivery(
            subscription, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=timezone.now() - timedelta(seconds=1)
        )
    waiting = make_delivery(subscription)
    assert claimed_ids() == {waiting.pk}


def test_a_lane_never_releases_rows_another_lane_holds(make_subscription, make_delivery):
    subscription = make_subscription()
    deliveries = [make_delivery(subscription) for _ in range(2)]
    [lane] = claiming.claim_lanes(1)
    Delivery.objects.filter(pk=deliveries[1].pk).update(lease_token="other")
    assert claiming.release_unsent(lane, lane.deliveries) == 1
    assert Delivery.objects.get(pk=deliveries[1].pk).status == DeliveryStatus.IN_FLIGHT


def test_next_due_reports_retries_leases_and_what_fell_due_since_the_last_claim(subscription, make_delivery):
    now = timezone.now()
    just_due = now - timedelta(milliseconds=10)
    make_delivery(subscription, attempts=1, next_attempt_at=just_due)
    make_delivery(subscription, attempts=1, next_attempt_at=now + timedelta(seconds=3))
    lease = now + timedelta(seconds=2)
    make_delivery(subscription, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease, lease_token="t")
    # A claim that began before the first retry fell due did not see it.
    assert claiming.next_due(now, 5, since=now - timedelta(seconds=1)) == (just_due, False)
    assert claiming.next_due(now, 5) == (lease, True)
    assert claiming.next_due(now, 1) is None


def caps() -> dict[int, int]:
    return dict(Subscription.objects.annotate(cap=claiming.in_flight_cap()).values_list("pk", "cap"))


@override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "MAX_IN_FLIGHT_PER_SUBSCRIPTION": 3})
def test_the_in_flight_cap_is_one_for_ordered_then_max_in_flight_then_the_setting(make_subscription):
    ordered = make_subscription(ordered=True, max_in_flight=5)
    own = make_subscription(max_in_flight=7)
    default = make_subscription()
    assert caps() == {ordered.pk: 1, own.pk: 7, default.pk: 3}


def test_a_claim_counts_lanes_against_the_same_cap(subscription, make_delivery):
    Subscription.objects.filter(pk=subscription.pk).update(max_in_flight=1)
    make_delivery(subscription)
    make_delivery(subscription, next_attempt_at=timezone.now() + timedelta(minutes=5))
    [lane] = claiming.claim_lanes(10)
    assert lane.subscription.cap == 1
    Delivery.objects.filter(status=DeliveryStatus.PENDING).update(next_attempt_at=timezone.now())
    assert claimed_ids() == set()
    Subscription.objects.filter(pk=subscription.pk).update(max_in_flight=2)
    assert len(claimed_ids()) == 1


def test_lease_lane_takes_new_deliveries_whatever_the_cap_circuit_or_state(make_subscription, make_delivery):
    subscription = make_subscription(
        enabled=False, max_in_flight=1, circuit_open_until=timezone.now() + timedelta(minutes=1)
    )
    make_delivery(
        subscription,
        status=DeliveryStatus.IN_FLIGHT,
        lease_expires_at=timezone.now() + timedelta(minutes=1),
        lease_token="busy",
    )
    delivery = make_delivery(subscription)
    before = timezone.now()
    lane = claiming.lease_lane(subscription, [delivery])
    assert lane.manual and lane.subscription == subscription and lane.deliveries == [delivery]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.lease_token) == (DeliveryStatus.IN_FLIGHT, lane.token)
    lease = timedelta(seconds=conf.DEFAULTS["LEASE_SECONDS"])
    assert before + lease <= delivery.lease_expires_at == lane.lease_expires_at <= timezone.now() + lease
    assert claiming.lanes_in_use([subscription.pk]) == {subscription.pk: 2}


@pytest.mark.parametrize(
    "cap,ordered,tasks,share",
    [(2, False, 1, 2), (2, False, 2, 1), (2, False, 5, 1), (16, False, 2, 8), (16, False, 3, 6), (5, True, 1, 1)],
)
def test_a_tasks_share_of_a_subscriptions_lanes_divides_its_cap_among_the_tasks(cap, ordered, tasks, share):
    subscription = Subscription(url="https://example.com/h", max_in_flight=cap, ordered=ordered)
    assert claiming.cap_of(subscription) == (1 if ordered else cap)
    assert claiming.lane_share(subscription, tasks) == share


def test_a_subscription_without_its_own_cap_shares_the_default_one():
    with override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "MAX_IN_FLIGHT_PER_SUBSCRIPTION": 4}):
        subscription = Subscription(url="https://example.com/h", max_in_flight=None)
        assert claiming.cap_of(subscription) == 4
        assert claiming.lane_share(subscription, 3) == 2

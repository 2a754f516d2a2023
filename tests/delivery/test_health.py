from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_webhooks import signals
from django_webhooks.delivery import health
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Event, Subscription

pytestmark = pytest.mark.django_db


def webhooks(**overrides):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **overrides})


@pytest.fixture
def owner():
    return get_user_model().objects.create(username="shop-owner", email="owner@example.com")


@pytest.fixture
def subscription(owner):
    return Subscription.objects.create(
        url="https://hooks.example.com/orders", event_types=["*"], owner_id=str(owner.pk)
    )


@pytest.fixture
def disabled_signals():
    received = []

    def on_disabled(sender, subscription, reason, **kwargs):
        received.append((subscription.pk, reason))

    signals.subscription_disabled.connect(on_disabled)
    yield received
    signals.subscription_disabled.disconnect(on_disabled)


def fail(subscription, times, now):
    for _ in range(times):
        health.record_outcome(subscription, False, now=now)


def fresh(subscription):
    return Subscription.objects.get(pk=subscription.pk)


# -- circuit breaker -------------------------------------------------------------------------


@webhooks(CIRCUIT_BREAKER_THRESHOLD=2)
def test_record_outcomes_ends_where_one_outcome_at_a_time_would(subscription):
    now = timezone.now()
    health.record_outcomes(subscription, [False, True, False, False], now=now)
    assert fresh(subscription).consecutive_failures == 2 and fresh(subscription).circuit_is_open(now)
    health.record_outcomes(subscription, [False, False, True], now=now)
    after = fresh(subscription)
    assert after.consecutive_failures == 0 and not after.circuit_is_open(now)
    assert after.last_success_at == now and after.failing_since is None
    health.record_outcomes(subscription, [], now=now)
    assert fresh(subscription).consecutive_failures == 0


def test_circuit_opens_after_threshold_failures_and_one_success_closes_it(subscription):
    now = timezone.now()
    fail(subscription, 4, now)
    assert fresh(subscription).circuit_open_until is None
    assert fresh(subscription).consecutive_failures == 4

    health.record_outcome(subscription, False, now=now)
    stored = fresh(subscription)
    assert stored.consecutive_failures == 5
    assert stored.circuit_open_until == now + timedelta(seconds=60)
    assert stored.circuit_is_open(now)
    assert subscription.circuit_is_open(now), "the caller's instance sees the open circuit"

    later = now + timedelta(seconds=61)
    health.record_outcome(subscription, True, now=later)
    stored = fresh(subscription)
    assert not stored.circuit_is_open(later)
    assert (stored.consecutive_failures, stored.circuit_open_until, stored.failing_since) == (0, None, None)
    assert stored.last_success_at == later


def test_cooldown_doubles_per_further_batch_of_failures_up_to_the_maximum(subscription):
    start = timezone.now()
    with webhooks(CIRCUIT_BREAKER_THRESHOLD=3, CIRCUIT_BREAKER_COOLDOWN=10, CIRCUIT_BREAKER_MAX_COOLDOWN=30):
        openings = []
        for batch in range(4):
            moment = start + timedelta(minutes=batch)
            fail(subscription, 2, moment)
            if batch:
                assert fresh(subscription).circuit_open_until == openings[-1], "no reopening mid-batch"
            fail(subscription, 1, moment)
            open_until = fresh(subscription).circuit_open_until
            openings.append(open_until)
            assert (open_until - moment).total_seconds() == [10, 20, 30, 30][batch]
    assert fresh(subscription).consecutive_failures == 12


def test_concurrent_outcomes_are_counted_by_the_database_not_in_python(subscription):
    now = timezone.now()
    seen_by_worker_a, seen_by_worker_b = fresh(subscription), fresh(subscription)
    health.record_outcome(seen_by_worker_a, False, now=now)
    health.record_outcome(seen_by_worker_b, False, now=now)
    assert fresh(subscription).consecutive_failures == 2


def test_a_success_costs_one_update_and_repeats_write_nothing(subscription):
    now = timezone.now()
    fail(subscription, 2, now)
    with CaptureQueriesContext(connection) as queries:
        health.record_outcome(subscription, True, now=now)
    # The UPDATE wrote, so one SELECT checks for an incident (an alert, an open circuit) to close.
    assert [query["sql"].split()[0] for query in queries] == ["UPDATE", "SELECT"]
    assert fresh(subscription).last_success_at == now

    soon = now + timedelta(milliseconds=200)
    with CaptureQueriesContext(connection) as queries:
        health.record_outcome(subscription, True, now=soon)
    assert len(queries) == 1 and queries[0]["sql"].startswith("UPDATE"), "the busy healthy endpoint's cost"
    assert fresh(subscription).last_success_at == now, "within the resolution nothing is rewritten"
    much_later = now + timedelta(minutes=5)
    health.record_outcome(subscription, True, now=much_later)
    assert fresh(subscription).last_success_at == much_later


def test_a_late_success_does_not_move_last_success_back(subscription):
    now = timezone.now()
    health.record_outcome(subscription, True, now=now)
    health.record_outcome(subscription, False, now=now)
    health.record_outcome(subscription, True, now=now - timedelta(seconds=30))
    stored = fresh(subscription)
    assert stored.last_success_at == now and stored.consecutive_failures == 0


# -- auto-disable ----------------------------------------------------------------------------


def test_failing_for_the_whole_period_disables_with_signal_and_email(
    subscription, disabled_signals, django_capture_on_commit_callbacks
):
    event = Event.objects.create(event_type="order.created", payload={"id": 1})
    waiting = Delivery.objects.create(event=event, subscription=subscription)
    start = timezone.now() - timedelta(days=6)

    with webhooks(NOTIFY_OWNER_ON_DISABLE=True), django_capture_on_commit_callbacks(execute=True):
        health.record_outcome(subscription, False, now=start)
        health.record_outcome(subscription, False, now=start + timedelta(days=4, hours=23))
        assert fresh(subscription).enabled
        assert disabled_signals == [] and mail.outbox == []

        health.record_outcome(subscription, False, now=start + timedelta(days=5, seconds=1))

    stored = fresh(subscription)
    assert not stored.enabled and not subscription.enabled
    assert stored.disabled_at == start + timedelta(days=5, seconds=1)
    assert stored.disabled_reason.startswith("Disabled automatically: every delivery failed for 5 days (since ")
    assert f"{start:%Y-%m-%d %H:%M}" in stored.disabled_reason
    assert disabled_signals == [(subscription.pk, stored.disabled_reason)]

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.com"]
    assert subscription.url in message.subject and subscription.url in message.body
    assert stored.disabled_reason in message.body and "re-enable" in message.body

    waiting.refresh_from_db()
    assert waiting.status == DeliveryStatus.PENDING, "deliveries wait for the subscription to be enabled again"


def test_a_success_resets_the_auto_disable_clock(subscription, disabled_signals):
    start = timezone.now() - timedelta(days=7)
    health.record_outcome(subscription, False, now=start)
    health.record_outcome(subscription, True, now=start + timedelta(days=3))
    health.record_outcome(subscription, False, now=start + timedelta(days=6))
    stored = fresh(subscription)
    assert stored.enabled and disabled_signals == []
    assert stored.failing_since == start + timedelta(days=6)


def test_no_email_unless_configured_or_without_an_owner_address(
    owner, subscription, disabled_signals, django_capture_on_commit_callbacks
):
    start = timezone.now() - timedelta(days=6)
    with django_capture_on_commit_callbacks(execute=True):
        fail(subscription, 2, start)
        health.record_outcome(subscription, False, now=start + timedelta(days=6))
    assert not fresh(subscription).enabled and len(disabled_signals) == 1
    assert mail.outbox == []

    owner.email = ""
    owner.save()
    ownerless = Subscription.objects.create(url="https://hooks.example.com/staff", event_types=["*"])
    with webhooks(NOTIFY_OWNER_ON_DISABLE=True), django_capture_on_commit_callbacks(execute=True):
        for target in (ownerless, Subscription.objects.create(url="https://x.example.com", owner_id=str(owner.pk))):
            assert health.disable_subscription(target, "Receiver answered 410 Gone.")
    assert mail.outbox == []


def test_disable_subscription_is_idempotent(subscription, disabled_signals):
    assert health.disable_subscription(subscription, "Disabled by staff.")
    assert not health.disable_subscription(fresh(subscription), "Disabled by staff again.")
    assert fresh(subscription).disabled_reason == "Disabled by staff."
    assert len(disabled_signals) == 1


def test_auto_disable_can_be_turned_off(subscription, disabled_signals):
    start = timezone.now() - timedelta(days=30)
    with webhooks(AUTO_DISABLE_AFTER=None):
        fail(subscription, 1, start)
        fail(subscription, 1, start + timedelta(days=30))
    assert fresh(subscription).enabled and disabled_signals == []


def test_reset_health_lets_a_re_enabled_subscription_start_over(subscription):
    start = timezone.now() - timedelta(days=6)
    fail(subscription, 1, start)
    fail(subscription, 5, start + timedelta(days=6))
    Subscription.objects.filter(pk=subscription.pk).update(enabled=True)
    subscription.enabled = True
    health.reset_health(subscription)
    health.record_outcome(subscription, False, now=timezone.now())
    stored = fresh(subscription)
    assert stored.enabled and stored.consecutive_failures == 1 and not stored.circuit_is_open()


# -- health figures --------------------------------------------------------------------------


def add_attempts(subscription, now, outcomes):
    """``outcomes``: (minutes ago, status or None, duration_ms, succeeded)."""
    event = Event.objects.create(event_type="order.created", payload={})
    delivery = Delivery.objects.create(event=event, subscription=subscription)
    for number, (minutes_ago, status, duration_ms, succeeded) in enumerate(outcomes, start=1):
        DeliveryAttempt.objects.create(
            delivery=delivery,
            subscription=subscription,
            attempt_number=number,
            created_at=now - timedelta(minutes=minutes_ago),
            url=subscription.url,
            response_status=status,
            duration_ms=duration_ms,
            succeeded=succeeded,
            error_class=ErrorClass.NONE if status else ErrorClass.TIMEOUT,
        )


def test_health_figures_of_the_last_24_hours(subscription):
    now = timezone.now()
    add_attempts(
        subscription,
        now,
        [
            (25 * 60, 200, 9999, True),  # outside the window
            (600, 200, 40, True),
            (300, 500, 10, False),
            (120, 200, 30, True),
            (60, None, 100, False),
            (30, 200, 20, True),
            (5, 503, None, False),  # no duration: counts, but not in the latency figures
        ],
    )
    fail(subscription, 3, now - timedelta(minutes=5))

    figures = health.subscription_health(subscription, now=now)

    assert figures["attempts_24h"] == 6
    assert figures["success_rate_24h"] == pytest.approx(3 / 6)
    assert figures["p50_ms"] == pytest.approx(30.0)
    assert figures["p95_ms"] == pytest.approx(40 + (100 - 40) * 0.8)
    assert figures["last_status"] == 503 and figures["last_error_class"] is None
    assert figures["consecutive_failures"] == 3
    assert figures["last_failure_at"] == now - timedelta(minutes=5)
    assert figures["circuit_state"] == "closed"


def test_health_of_a_new_subscription_and_an_open_circuit(subscription):
    now = timezone.now()
    figures = health.subscription_health(subscription, now=now)
    assert figures["attempts_24h"] == 0
    assert figures["success_rate_24h"] is None and figures["p50_ms"] is None and figures["p95_ms"] is None
    assert figures["last_status"] is None and figures["last_success_at"] is None
    assert figures["circuit_state"] == "closed"

    fail(subscription, 5, now)
    figures = health.subscription_health(subscription, now=now + timedelta(seconds=1))
    assert figures["circuit_state"] == "open" and figures["circuit_open_until"] == now + timedelta(seconds=60)
    assert health.subscription_health(subscription, now=now + timedelta(seconds=61))["circuit_state"] == "closed"


def test_health_for_a_page_costs_the_same_queries_for_any_number_of_subscriptions():
    now = timezone.now()
    page = [Subscription.objects.create(url=f"https://hooks.example.com/{i}", event_types=["*"]) for i in range(10)]
    for index, subscription in enumerate(page):
        add_attempts(subscription, now, [(m, 200, 10 * (index + 1) + m, True) for m in range(1, 4)])

    with CaptureQueriesContext(connection) as one:
        health.health_for(page[:1], now=now)
    with CaptureQueriesContext(connection) as ten:
        figures = health.health_for(page, now=now)

    assert len(ten) == len(one) <= 2
    assert sorted(figures) == [s.pk for s in page]
    assert figures[page[4].pk]["attempts_24h"] == 3
    assert figures[page[4].pk]["p50_ms"] == pytest.approx(52.0)
    assert figures[page[9].pk]["success_rate_24h"] == 1.0

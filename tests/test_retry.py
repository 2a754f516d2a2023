"""The default retry policy: schedule, jitter, Retry-After, and the fate of each status class."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from django.test import override_settings

from django_webhooks.delivery.transport import TransportResult
from django_webhooks.models import Delivery, DeliveryStatus, ErrorClass
from django_webhooks.retry import BaseRetryPolicy, DefaultRetryPolicy, RetryDecision, get_retry_policy

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


def decide(status=None, attempts=1, headers=None, error_class="", **kwargs) -> RetryDecision:
    result = TransportResult(status=status, headers=headers or {}, error_class=error_class, **kwargs)
    return DefaultRetryPolicy().decide(Delivery(attempts=attempts), result, NOW)


def wait_of(decision: RetryDecision) -> float:
    return (decision.next_attempt_at - NOW).total_seconds()


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_succeeds(status):
    decision = decide(status)
    assert decision.status == DeliveryStatus.SUCCEEDED and decision.next_attempt_at is None


@pytest.mark.parametrize("attempts", range(1, 8))
def test_retries_follow_the_svix_schedule_within_jitter(attempts):
    expected = SCHEDULE[attempts - 1]
    waits = [wait_of(decide(500, attempts=attempts)) for _ in range(50)]
    assert all(expected * 0.8 <= w <= expected * 1.2 for w in waits)
    assert len({round(w, 3) for w in waits}) > 1


def test_schedule_gives_eight_attempts_then_exhausted():
    assert decide(500, attempts=7).status == DeliveryStatus.PENDING
    exhausted = decide(500, attempts=8)
    assert exhausted.status == DeliveryStatus.EXHAUSTED and exhausted.next_attempt_at is None
    assert "8 attempts" in exhausted.reason


@override_settings(DJANGO_WEBHOOKS={"RETRY_SCHEDULE": [1, 2], "RETRY_JITTER": 0})
def test_schedule_and_jitter_come_from_settings():
    assert wait_of(decide(503, attempts=1)) == 1
    assert wait_of(decide(503, attempts=2)) == 2
    assert decide(503, attempts=3).status == DeliveryStatus.EXHAUSTED


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 429])
def test_transient_statuses_are_retried(status):
    assert decide(status).status == DeliveryStatus.PENDING


@pytest.mark.parametrize("error_class", [ErrorClass.TIMEOUT, ErrorClass.CONNECTION, ErrorClass.DNS, ErrorClass.TLS])
def test_network_errors_are_retried(error_class):
    assert decide(None, error_class=error_class, error_message="boom").status == DeliveryStatus.PENDING


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 413, 422])
def test_other_4xx_fail_at_once(status):
    decision = decide(status, error_class=ErrorClass.HTTP_STATUS)
    assert decision.status == DeliveryStatus.FAILED
    assert not decision.disable_subscription
    assert decision.reason == f"HTTP {status}"


def test_410_fails_and_disables_the_subscription():
    decision = decide(410)
    assert decision.status == DeliveryStatus.FAILED and decision.disable_subscription
    assert "410" in decision.reason


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirects_fail_and_are_not_retried(status):
    assert decide(status, error_class=ErrorClass.REDIRECT).status == DeliveryStatus.FAILED
    assert decide(status).status == DeliveryStatus.FAILED


@pytest.mark.parametrize("error_class", [ErrorClass.BLOCKED_TARGET, ErrorClass.INVALID_TARGET])
def test_refused_targets_fail_and_are_not_retried(error_class):
    decision = decide(None, error_class=error_class, error_message="10.0.0.1 is private")
    assert decision.status == DeliveryStatus.FAILED
    assert "10.0.0.1 is private" in decision.reason


def test_retry_after_seconds_is_honoured_for_429():
    decision = decide(429, headers={"Retry-After": "120"})
    assert decision.status == DeliveryStatus.PENDING
    assert wait_of(decision) >= 120


def test_retry_after_http_date_is_honoured():
    when = NOW + timedelta(seconds=600)
    decision = decide(503, attempts=2, headers={"retry-after": format_datetime(when, usegmt=True)})
    assert wait_of(decision) == pytest.approx(600, abs=1)


def test_retry_after_never_shortens_the_schedule():
    assert wait_of(decide(503, attempts=3, headers={"Retry-After": "1"})) >= 1800 * 0.8


def test_retry_after_is_capped():
    # At most max(2x the scheduled wait, MAX_RETRY_AFTER): never a week.
    assert wait_of(decide(429, attempts=1, headers={"Retry-After": str(7 * 86400)})) == 3600
    assert wait_of(decide(429, attempts=7, headers={"Retry-After": str(7 * 86400)})) == 72000


@override_settings(DJANGO_WEBHOOKS={"RETRY_SCHEDULE": [1, 1], "MAX_RETRY_AFTER": 60})
def test_max_retry_after_comes_from_the_setting():
    assert wait_of(decide(429, headers={"Retry-After": "120"})) == 60
    assert wait_of(decide(429, headers={"Retry-After": "30"})) == 30


@pytest.mark.parametrize("value", ["soon", "", "-5", "Wed, 99 Foo 2026"])
def test_unreadable_retry_after_falls_back_to_the_schedule(value):
    wait = wait_of(decide(429, headers={"Retry-After": value}))
    assert 4 <= wait <= 6


def test_retry_after_in_the_past_uses_the_schedule():
    past = format_datetime(NOW - timedelta(hours=1), usegmt=True)
    assert 4 <= wait_of(decide(503, headers={"Retry-After": past})) <= 6


class AlwaysGiveUp(BaseRetryPolicy):
    def decide(self, delivery, result, now):
        return RetryDecision(DeliveryStatus.FAILED, reason="no")


def test_get_retry_policy_uses_the_setting():
    assert isinstance(get_retry_policy(), DefaultRetryPolicy)
    with override_settings(DJANGO_WEBHOOKS={"RETRY_POLICY": "tests.test_retry.AlwaysGiveUp"}):
        assert get_retry_policy().decide(Delivery(attempts=1), TransportResult(status=500), NOW).reason == "no"


class AlsoRetryNotFound(DefaultRetryPolicy):
    """The documented extension point: a subclass reading what the result means."""

    def decide(self, delivery, result, now):
        if result.status == 404:
            return self.retry(delivery, result, now)
        return super().decide(delivery, result, now)


def test_a_subclass_can_reuse_the_default_rules():
    policy = AlsoRetryNotFound()
    not_found = TransportResult(status=404, error_class=ErrorClass.HTTP_STATUS)
    assert not not_found.retryable
    assert policy.decide(Delivery(attempts=1), not_found, NOW).status == DeliveryStatus.PENDING
    gone = TransportResult(status=410, error_class=ErrorClass.HTTP_STATUS)
    assert policy.decide(Delivery(attempts=1), gone, NOW).disable_subscription


@pytest.mark.parametrize("status", [None, 200, 302, 404, 408, 410, 429, 500])
@pytest.mark.parametrize("error_class", ["", ErrorClass.HTTP_STATUS, ErrorClass.TIMEOUT, ErrorClass.BLOCKED_TARGET])
def test_the_default_policy_retries_exactly_what_the_result_calls_retryable(status, error_class):
    result = TransportResult(status=status, error_class=error_class)
    decision = DefaultRetryPolicy().decide(Delivery(attempts=1), result, NOW)
    assert decision.will_retry == result.retryable
    assert (decision.status == DeliveryStatus.SUCCEEDED) == result.succeeded
    assert decision.disable_subscription == result.gone


def test_base_policy_must_be_overridden():
    with pytest.raises(NotImplementedError):
        BaseRetryPolicy().decide(Delivery(attempts=1), TransportResult(status=500), NOW)

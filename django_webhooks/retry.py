"""Retry policy: what happens to a delivery after each attempt.

The policy is chosen by ``DJANGO_WEBHOOKS["RETRY_POLICY"]`` (a dotted path to a
:class:`BaseRetryPolicy` subclass). The default follows Svix: a fixed schedule of waits with
+-20 % jitter, ``Retry-After`` honoured, 4xx final, ``410 Gone`` disables the subscription.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime

from .conf import webhooks_settings
from .delivery.transport import TransportResult
from .models import Delivery, DeliveryStatus, ErrorClass


@dataclass(frozen=True)
class RetryDecision:
    """The next state of a delivery after one attempt.

    ``status`` is a :class:`~django_webhooks.models.DeliveryStatus`: ``pending`` (retry at
    ``next_attempt_at``), ``succeeded``, ``failed`` (refused for good) or ``exhausted``
    (the schedule is spent). ``disable_subscription`` asks the engine to disable the
    subscription with ``reason``.
    """

    status: str
    next_attempt_at: datetime | None = None
    disable_subscription: bool = False
    reason: str = ""

    @property
    def will_retry(self) -> bool:
        return self.status == DeliveryStatus.PENDING


class BaseRetryPolicy:
    """Decides what follows an attempt. Subclass it and point ``RETRY_POLICY`` at the subclass.

    Override :meth:`decide`. It receives the delivery (``delivery.attempts`` already counts the
    attempt being judged), the transport's
    :class:`~django_webhooks.delivery.transport.TransportResult` (``status``, ``headers``,
    ``body``, ``duration_ms``, ``error_class``, ``error_message``, and what they mean:
    ``succeeded``, ``retryable``, ``refused``, ``gone``) and the current time, and returns a
    :class:`RetryDecision`. It must not touch the database: the engine applies the decision.
    Policies are instantiated once per batch, with no arguments.
    """

    def decide(self, delivery: Delivery, result: TransportResult, now: datetime) -> RetryDecision:
        raise NotImplementedError("Retry policies must implement decide(delivery, result, now).")


class DefaultRetryPolicy(BaseRetryPolicy):
    """Svix's behaviour: retry transient failures on ``RETRY_SCHEDULE`` with ``RETRY_JITTER``.

    Retried: connection errors, timeouts, DNS and TLS errors, 5xx, 408 and 429. ``Retry-After``
    (seconds or an HTTP date) is honoured, never shorter than the scheduled wait and never longer
    than twice that wait or ``MAX_RETRY_AFTER``, whichever is more. Any other 4xx fails
    at once; ``410 Gone`` also disables the subscription. A redirect or a blocked target fails
    at once. When the schedule is spent the delivery is ``exhausted``.
    """

    def decide(self, delivery: Delivery, result: TransportResult, now: datetime) -> RetryDecision:
        if result.succeeded:
            return RetryDecision(DeliveryStatus.SUCCEEDED, reason=f"HTTP {result.status}")
        if result.retryable:
            return self.retry(delivery, result, now)
        if result.gone:
            return RetryDecision(
                DeliveryStatus.FAILED,
                disable_subscription=True,
                reason="The endpoint answered 410 Gone.",
            )
        return RetryDecision(DeliveryStatus.FAILED, reason=self.describe(result))

    def retry(self, delivery: Delivery, result: TransportResult, now: datetime) -> RetryDecision:
        """Schedule the next attempt, or give up when the schedule is spent."""
        schedule = list(webhooks_settings.RETRY_SCHEDULE)
        step = delivery.attempts - 1
        if step >= len(schedule):
            return RetryDecision(
                DeliveryStatus.EXHAUSTED,
                reason=f"Gave up after {delivery.attempts} attempts: {self.describe(result)}",
            )
        delay = self.delay(schedule[step], result, now)
        return RetryDecision(
            DeliveryStatus.PENDING,
            next_attempt_at=now + timedelta(seconds=delay),
            reason=self.describe(result),
        )

    def delay(self, scheduled: float, result: TransportResult, now: datetime) -> float:
        """Seconds to wait: the jittered scheduled wait, or a longer ``Retry-After`` within bounds."""
        jitter = float(webhooks_settings.RETRY_JITTER)
        wait = scheduled * random.uniform(1 - jitter, 1 + jitter)
        asked = retry_after_seconds(result.headers or {}, now)
        if asked is not None:
            ceiling = max(2 * scheduled, float(webhooks_settings.MAX_RETRY_AFTER))
            wait = max(wait, min(asked, ceiling))
        return max(wait, 0.0)

    @staticmethod
    def describe(result: TransportResult) -> str:
        status = result.status
        message = result.error_message or ""
        error_class = result.error_class or ""
        if error_class and error_class != ErrorClass.HTTP_STATUS:
            return f"{error_class}: {message}".strip(": ")
        return f"HTTP {status}" if status is not None else (message or "no response")


def retry_after_seconds(headers: dict[str, str], now: datetime) -> float | None:
    """The wait a ``Retry-After`` header asks for, in seconds; None if absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = str(value).strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - now).total_seconds(), 0.0)


def get_retry_policy() -> BaseRetryPolicy:
    """An instance of the policy named by ``RETRY_POLICY``."""
    policy = webhooks_settings.RETRY_POLICY
    return policy() if isinstance(policy, type) else policy

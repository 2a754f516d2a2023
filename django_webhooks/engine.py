"""The delivery engine: claim due deliveries, send them, record attempts, decide what follows.

A claim is a lease (``status=in_flight`` + ``lease_expires_at`` + ``lease_token``) on a *lane*:
up to ``CLAIM_BATCH_SIZE`` due deliveries of one subscription, sent one after another by one
sender thread over its keep-alive connection (claiming: :mod:`django_webhooks.claiming`). A
worker that dies leaves its leases to expire; :func:`release_expired_leases` returns them to
``pending`` and another worker sends them again with the same ``webhook-id``: delivery is
at-least-once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from queue import Empty, SimpleQueue
from typing import Any

from django.db import transaction
from django.db.models import F, Min
from django.utils import timezone

from . import health, signals
from .claiming import Lane, claim_lanes, due_count, extend_lane, lane_size, release_expired_leases, release_unsent
from .conf import webhooks_settings
from .models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Subscription
from .retry import RETRYABLE_CLIENT_STATUSES, RETRYABLE_ERRORS, RetryDecision, get_retry_policy
from .secret_store import signing_secrets
from .signing import webhook_headers
from .transport import TransportResult, get_transport, request_headers

logger = logging.getLogger("django_webhooks.delivery")

__all__ = ["claim_due", "deliver", "deliver_due", "due_count", "release_expired_leases"]

#: What a sender thread returns for one delivery: the request headers, the transport's
#: result and when the request started.
Sent = tuple[dict[str, str], Any, datetime]

#: How long ``deliver_due`` waits for a retry that falls due soon (Svix's first retry is 5 s),
#: rather than leaving it to the next sweep, a minute away.
NEAR_DUE_SECONDS = 5.0
#: A lane starts no request unless its lease outlasts it by ``TIMEOUT`` plus this margin
#: (this fraction of ``LEASE_SECONDS``, at least ``LEASE_MARGIN_MIN`` seconds).
LEASE_MARGIN_FRACTION = 0.1
LEASE_MARGIN_MIN = 1.0
#: A request taking this long marks its endpoint slow in this process for a while.
SLOW_REQUEST_SECONDS = 1.0
SLOW_MEMORY_SECONDS = 60.0
#: For this long after it starts, a task takes at most one lane per subscription, leaving the
#: others to workers starting alongside it: lanes spread over processes send more.
SHARE_LANES_SECONDS = 2.0
#: How often a task with lanes running looks for new work when its last claim found none.
CLAIM_POLL_SECONDS = 0.25
REDACTED = "<redacted>"
REDACTED_SIGNATURE = "v1,<redacted>"
#: Custom header names whose values are credentials, not kept in attempt records.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
CREDENTIAL_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth")


def claim_due(limit: int | None = None) -> list[Delivery]:
    """Lease up to ``limit`` due deliveries to this worker and return them (lanes, flattened).

    At most one lane per subscription is taken; see :func:`~django_webhooks.claiming.claim_lanes`
    for what is skipped. Safe with any number of concurrent workers.
    """
    limit = int(limit or webhooks_settings.CLAIM_BATCH_SIZE)
    lanes = claim_lanes(limit, max_deliveries=limit)
    return [delivery for lane in lanes for delivery in lane.deliveries]


def is_credential_header(name: str) -> bool:
    """Whether a header's value is a credential (never stored, never shown)."""
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or any(word in lowered for word in CREDENTIAL_WORDS)


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    """Request headers as stored on an attempt: signatures and credentials are never kept.

    ``webhook-signature`` keeps one ``v1,<redacted>`` per signature sent, so the log still
    shows that a rotation sent two.
    """
    stored = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "webhook-signature":
            stored[name] = " ".join(REDACTED_SIGNATURE for _ in str(value).split()) or REDACTED_SIGNATURE
        elif is_credential_header(name):
            stored[name] = REDACTED
        else:
            stored[name] = value
    return stored


def _send(delivery: Delivery, secrets: list[str]) -> Sent:
    """Sign and send one delivery (runs in a sender thread; no database access)."""
    subscription = delivery.subscription
    body = delivery.event.body.encode("utf-8")
    headers: dict[str, str] = {}
    started = timezone.now()
    try:
        signed = webhook_headers(delivery.message_id, int(time.time()), body, secrets)
        headers = request_headers(subscription.headers or {}, signed)
        result = get_transport().send(subscription.url, body, headers)
    except Exception as exc:
        logger.exception("Sending delivery %s failed unexpectedly", delivery.pk)
        result = TransportResult(error_class=ErrorClass.INTERNAL, error_message=f"{type(exc).__name__}: {exc}"[:500])
    return headers, result, started


_pool: tuple[int, int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


def _sender_pool() -> ThreadPoolExecutor:
    """This process's sender threads, kept across batches so their pooled connections are reused."""
    global _pool
    size = max(1, int(webhooks_settings.SEND_CONCURRENCY))
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != size:
            if _pool is not None and _pool[0] == os.getpid():
                _pool[2].shutdown(wait=False)
            _pool = (os.getpid(), size, ThreadPoolExecutor(max_workers=size, thread_name_prefix="webhooks-send"))
        return _pool[2]


def _secrets_for(deliveries: Iterable[Delivery], cache: dict[int, list[str]]) -> dict[int, list[str]]:
    """Signing secrets per subscription, read in the calling thread (sender threads use no DB)."""
    for delivery in deliveries:
        if delivery.subscription_id not in cache:
            cache[delivery.subscription_id] = signing_secrets(delivery.subscription)
    return cache


def deliver(deliveries: Iterable[Delivery]) -> list[DeliveryAttempt]:
    """Send claimed deliveries concurrently, record one attempt each and apply the retry policy."""
    deliveries = list(deliveries)
    if not deliveries:
        return []
    secrets = _secrets_for(deliveries, {})
    pool = _sender_pool()
    outcomes = list(pool.map(lambda d: _send(d, secrets[d.subscription_id]), deliveries))
    return _record(list(zip(deliveries, outcomes, strict=True)))


def endpoint_unwell(result: Any) -> bool:
    """The answer says the endpoint is in trouble (timeout, connection error, 5xx, 408, 429):
    a lane stops there rather than send it more."""
    status = getattr(result, "status", None)
    if result.error_class in RETRYABLE_ERRORS:
        return True
    return status is not None and (status >= 500 or status in RETRYABLE_CLIENT_STATUSES)


def _lease_stop_at(lane: Lane) -> float:
    """Monotonic time after which the lane's lease would not outlast one more request."""
    timeout = float(webhooks_settings.TIMEOUT)
    lease = float(webhooks_settings.LEASE_SECONDS)
    margin = max(LEASE_MARGIN_MIN, LEASE_MARGIN_FRACTION * lease)
    return lane.claimed_at + lease - timeout - margin


def _lane_stop_at(lane: Lane, task_deadline: float) -> float:
    """Monotonic time after which the lane starts no new request (lease or task budget)."""
    return min(_lease_stop_at(lane), task_deadline)


def send_lane(lane: Lane, secrets: list[str], stop_at: float) -> list[tuple[Delivery, Sent]]:
    """Send a lane's deliveries one after another (runs in a sender thread; no database access).

    Stops early after an answer that says the endpoint is unwell, or once ``stop_at`` has
    passed (the lease would not outlast another request, or the task's budget is spent). The
    first delivery is sent unless the lease itself is too close to its end (a lane that waited
    for a thread too long).
    """
    sent = []
    lease_stop_at = _lease_stop_at(lane)
    for delivery in lane.deliveries:
        now = time.monotonic()
        if now >= lease_stop_at or (sent and now >= stop_at):
            break
        lane.request_started = time.monotonic()
        outcome = _send(delivery, secrets)
        lane.request_started = None
        sent.append((delivery, outcome))
        if endpoint_unwell(outcome[1]):
            break
    return sent


def finish_lane(lane: Lane, sent: list[tuple[Delivery, Sent]]) -> list[DeliveryAttempt]:
    """Record a lane's attempts and hand what it did not send back to ``pending`` at once."""
    attempts = _record(sent)
    unsent = lane.deliveries[len(sent) :]
    if unsent:
        released = release_unsent(lane, unsent)
        logger.info(
            "Lane of subscription %s stopped early; %d delivery(ies) back to pending.", lane.subscription.pk, released
        )
    return attempts


def _build_attempt(delivery: Delivery, sent: Sent, decision: RetryDecision, max_body: int) -> DeliveryAttempt:
    headers, result, started = sent
    body = result.body or b""
    return DeliveryAttempt(
        delivery=delivery,
        subscription_id=delivery.subscription_id,
        attempt_number=delivery.attempts,
        created_at=started,
        url=delivery.subscription.url,
        request_headers=redact_headers(headers),
        response_status=result.status,
        response_headers=dict(result.headers or {}),
        response_body=body[:max_body].decode("utf-8", errors="replace")
        if isinstance(body, bytes)
        else str(body)[:max_body],
        duration_ms=result.duration_ms,
        error_class=result.error_class or "",
        error_message=(result.error_message or "")[:2000],
        succeeded=decision.status == DeliveryStatus.SUCCEEDED,
    )


def _record(sent: list[tuple[Delivery, Sent]]) -> list[DeliveryAttempt]:
    """Store the attempts (one INSERT), apply the decisions and update health once per subscription.

    Successes are written with one ``UPDATE`` per lease (and status code), guarded by the lease
    so a delivery another worker took over keeps its new state; failures one by one.
    """
    if not sent:
        return []
    policy = get_retry_policy()
    max_body = int(webhooks_settings.MAX_RESPONSE_BYTES)
    attempts = []
    decisions = []
    for delivery, outcome in sent:
        delivery.attempts += 1
        decision = policy.decide(delivery, outcome[1], timezone.now())
        decisions.append(decision)
        attempts.append(_build_attempt(delivery, outcome, decision, max_body))
    DeliveryAttempt.objects.bulk_create(attempts)
    now = timezone.now()
    outcomes: dict[int, list[bool]] = defaultdict(list)
    subscriptions: dict[int, Subscription] = {}
    successes: dict[tuple[str, datetime | None, int | None], list[tuple[Delivery, DeliveryAttempt]]] = defaultdict(list)
    failures = []
    for (delivery, _), attempt, decision in zip(sent, attempts, decisions, strict=True):
        outcomes[delivery.subscription_id].append(attempt.succeeded)
        subscriptions[delivery.subscription_id] = delivery.subscription
        if attempt.succeeded:
            successes[(delivery.lease_token, delivery.lease_expires_at, attempt.response_status)].append(
                (delivery, attempt)
            )
        else:
            failures.append((delivery, attempt, decision))
    with transaction.atomic():
        held = _apply_successes(successes, now)
        applied = [
            (delivery, attempt, decision, _apply_failure(delivery, attempt, decision, now))
            for delivery, attempt, decision in failures
        ]
        for sid, subscription_outcomes in outcomes.items():
            health.record_outcomes(subscriptions[sid], subscription_outcomes, now)
    for group in successes.values():
        for delivery, attempt in group:
            _announce(delivery, attempt, None, delivery.pk in held)
    for delivery, attempt, decision, updated in applied:
        _announce(delivery, attempt, decision, updated)
    return attempts


def _apply_successes(
    successes: dict[tuple[str, datetime | None, int | None], list[tuple[Delivery, DeliveryAttempt]]], now: datetime
) -> set[int]:
    """Mark succeeded deliveries done, one ``UPDATE`` per lease; return the ids still held."""
    held: set[int] = set()
    for (token, lease_expires_at, status_code), group in successes.items():
        ids = [delivery.pk for delivery, _ in group]
        updated = Delivery.objects.filter(
            pk__in=ids, status=DeliveryStatus.IN_FLIGHT, lease_token=token, lease_expires_at=lease_expires_at
        ).update(
            status=DeliveryStatus.SUCCEEDED,
            attempts=F("attempts") + 1,
            next_attempt_at=None,
            last_status_code=status_code,
            last_error="",
            completed_at=now,
            lease_expires_at=None,
            lease_token="",
        )
        if updated == len(ids):
            held.update(ids)
        elif updated:
            held.update(
                Delivery.objects.filter(pk__in=ids, status=DeliveryStatus.SUCCEEDED, completed_at=now).values_list(
                    "pk", flat=True
                )
            )
        for delivery, _ in group:
            if delivery.pk in held:
                delivery.status = DeliveryStatus.SUCCEEDED
                delivery.next_attempt_at = None
                delivery.last_status_code = status_code
                delivery.last_error = ""
                delivery.completed_at = now
                delivery.lease_expires_at = None
                delivery.lease_token = ""
    return held


def _apply_failure(delivery: Delivery, attempt: DeliveryAttempt, decision: RetryDecision, now: datetime) -> bool:
    final = decision.status != DeliveryStatus.PENDING
    changes = {
        "status": decision.status,
        "attempts": delivery.attempts,
        "next_attempt_at": decision.next_attempt_at,
        "last_status_code": attempt.response_status,
        "last_error": decision.reason[:255],
        "completed_at": now if final else None,
        "lease_expires_at": None,
        "lease_token": "",
    }
    subscription = delivery.subscription
    updated = Delivery.objects.filter(
        pk=delivery.pk,
        status=DeliveryStatus.IN_FLIGHT,
        lease_token=delivery.lease_token,
        lease_expires_at=delivery.lease_expires_at,
    ).update(**changes)
    if updated and decision.disable_subscription and subscription.enabled:
        from .operations import disable

        disable(subscription, decision.reason)
    if updated:
        for name, value in changes.items():
            setattr(delivery, name, value)
    return bool(updated)


def _announce(delivery: Delivery, attempt: DeliveryAttempt, decision: RetryDecision | None, updated: bool) -> None:
    """Log the outcome and send its signal (only while the lease was still ours)."""
    will_retry = decision is not None and decision.will_retry
    outcome = "succeeded" if attempt.succeeded else ("retry" if will_retry else decision.status)
    log = logger.info if attempt.succeeded else logger.warning
    next_attempt_at = decision.next_attempt_at if decision is not None else None
    if log is logger.warning or logger.isEnabledFor(logging.INFO):
        log(
            "webhook delivery %s: event=%s delivery=%s message=%s attempt=%s status=%s error=%s duration_ms=%s",
            outcome,
            delivery.event_id,
            delivery.pk,
            delivery.message_id,
            attempt.attempt_number,
            attempt.response_status,
            attempt.error_class or "-",
            attempt.duration_ms,
            extra={
                "webhook": {
                    "event_id": delivery.event_id,
                    "delivery_id": delivery.pk,
                    "subscription_id": delivery.subscription_id,
                    "message_id": delivery.message_id,
                    "attempt": attempt.attempt_number,
                    "outcome": outcome,
                    "status": attempt.response_status,
                    "error_class": attempt.error_class,
                    "duration_ms": attempt.duration_ms,
                    "next_attempt_at": next_attempt_at.isoformat() if next_attempt_at else None,
                }
            },
        )
    if not updated:
        logger.warning(
            "Delivery %s lost its lease while sending; the attempt is recorded, its state left to the new holder.",
            delivery.pk,
        )
        return
    if attempt.succeeded:
        signals.delivery_succeeded.send(sender=Delivery, delivery=delivery, attempt=attempt)
    elif will_retry:
        signals.delivery_failed.send(
            sender=Delivery, delivery=delivery, attempt=attempt, next_attempt_at=next_attempt_at
        )
    else:
        signals.delivery_exhausted.send(sender=Delivery, delivery=delivery, attempt=attempt)


def _next_due_soon(now: datetime, horizon: float) -> datetime | None:
    soonest = (
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__gt=now,
            next_attempt_at__lte=now + timedelta(seconds=horizon),
            subscription__enabled=True,
        )
        .exclude(subscription__circuit_open_until__gt=now)
        .aggregate(soonest=Min("next_attempt_at"))["soonest"]
    )
    return soonest


class _SlowEndpoints:
    """Subscriptions this process saw answer slowly lately (per process, forgotten after a while)."""

    def __init__(self) -> None:
        self.until: dict[int, float] = {}

    def current(self) -> set[int]:
        now = time.monotonic()
        for sid in [sid for sid, until in self.until.items() if until <= now]:
            del self.until[sid]
        return set(self.until)

    def observe(self, lane: Lane, sent: list[tuple[Delivery, Sent]]) -> None:
        slowest = max(((outcome[1].duration_ms or 0) for _, outcome in sent), default=0) / 1000
        if slowest >= SLOW_REQUEST_SECONDS or any(o[1].error_class == ErrorClass.TIMEOUT for _, o in sent):
            self.until[lane.subscription.pk] = time.monotonic() + SLOW_MEMORY_SECONDS
        else:
            self.until.pop(lane.subscription.pk, None)


_slow_endpoints = _SlowEndpoints()


class _LaneRunner:
    """One lane on one sender thread: its batches, sent one after another.

    ``deliver_due`` feeds the next batch (:func:`~django_webhooks.claiming.extend_lane`) while
    the current one is being sent; the thread reports each batch on ``completions`` and a final
    ``None`` when it ends.
    """

    def __init__(self, lane: Lane, secrets: list[str], task_deadline: float, completions: SimpleQueue) -> None:
        self.lane = lane
        self.secrets = secrets
        self.task_deadline = task_deadline
        self.completions = completions
        self.batches: deque[Lane] = deque([lane])
        self.current: Lane | None = None
        self.stopped = False
        self.closed = False
        self.lock = threading.Lock()

    def feed(self, batch: Lane) -> bool:
        """Queue ``batch`` after the current one; False once the thread has ended or stopped."""
        with self.lock:
            if self.closed or self.stopped:
                return False
            self.batches.append(batch)
            return True

    def wants_more(self) -> bool:
        with self.lock:
            return not (self.closed or self.stopped) and len(self.batches) == 0

    def run(self) -> None:
        try:
            while True:
                with self.lock:
                    if not self.batches:
                        self.closed = True
                        return
                    batch = self.batches.popleft()
                    stopped = self.stopped
                self.current = batch
                sent = [] if stopped else send_lane(batch, self.secrets, _lane_stop_at(batch, self.task_deadline))
                self.current = None
                if len(sent) < len(batch.deliveries):
                    with self.lock:
                        self.stopped = True
                self.completions.put((self, batch, sent))
        finally:
            self.completions.put((self, None, None))

    def suspect(self, now: float) -> bool:
        current = self.current
        started = current.request_started if current is not None else None
        return self.lane.suspect or (started is not None and now - started >= SLOW_REQUEST_SECONDS)


def _extendable(lane: Lane, sent: list) -> bool:
    """A full batch of a lane at full size, sent completely (or about to be): more is probably due.

    Never for a rate-limited subscription: its next batch waits for its pace (``next_send_at``).
    """
    size = lane_size(lane.subscription)
    if lane.subscription.rate_limit or size <= 1:
        return False
    return len(lane.deliveries) >= size and len(sent) == len(lane.deliveries)


def _extend(runner: _LaneRunner) -> None:
    batch = extend_lane(runner.lane)
    if batch is not None and not runner.feed(batch):
        release_unsent(batch, batch.deliveries)


def deliver_due(time_budget: float | None = None) -> int:
    """Claim and send due deliveries until none is due or the time budget is spent; return the count.

    Sending is a pipeline of lanes: whenever a sender thread is free, another lane is claimed for
    it, so a slow endpoint holds only its own lanes, and a lane is fed its next batch while it
    sends the current one. Lanes to endpoints that are failing or were seen answering slowly
    may take at most half of the ``SEND_CONCURRENCY`` threads, so the others always have room.
    In its first seconds a task takes one lane per subscription, leaving the others to workers
    starting alongside it. No lane starts a request after the budget is spent: a task lasts at most
    ``TASK_TIME_BUDGET`` + ``TIMEOUT`` (plus bookkeeping). A retry falling due within a few
    seconds is waited for, so a quick first retry does not wait for the next sweep.
    """
    budget = float(webhooks_settings.TASK_TIME_BUDGET if time_budget is None else time_budget)
    deadline = time.monotonic() + budget
    share_until = time.monotonic() + SHARE_LANES_SECONDS
    threads = max(1, int(webhooks_settings.SEND_CONCURRENCY))
    suspect_threads = max(1, threads // 2)
    pool = _sender_pool()
    secrets: dict[int, list[str]] = {}
    completions: SimpleQueue = SimpleQueue()
    runners: set[_LaneRunner] = set()
    delivered = 0
    next_claim = 0.0
    while True:
        now = time.monotonic()
        free = threads - len(runners)
        if now < deadline and free > 0 and now >= next_claim:
            slow = _slow_endpoints.current()
            suspects = sum(runner.suspect(now) for runner in runners)
            held = {runner.lane.subscription.pk for runner in runners} if now < share_until else ()
            lanes = claim_lanes(free, exclude=held, slow=slow, exclude_suspect=suspects >= suspect_threads)
            _secrets_for((lane.deliveries[0] for lane in lanes), secrets)
            for lane in lanes:
                runner = _LaneRunner(lane, secrets[lane.subscription.pk], deadline, completions)
                runners.add(runner)
                pool.submit(runner.run)
                if _extendable(lane, lane.deliveries):
                    _extend(runner)
            next_claim = 0.0 if lanes else now + CLAIM_POLL_SECONDS
        if runners:
            timeout = max(0.0, next_claim - time.monotonic()) if next_claim else None
            try:
                runner, batch, sent = completions.get(timeout=timeout)
            except Empty:
                continue
            if batch is None:
                runners.discard(runner)
                next_claim = 0.0
                continue
            if time.monotonic() < deadline and runner.wants_more() and _extendable(batch, sent):
                _extend(runner)
            _slow_endpoints.observe(batch, sent)
            finish_lane(batch, sent)
            delivered += len(sent)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wall = timezone.now()
        soonest = _next_due_soon(wall, min(NEAR_DUE_SECONDS, remaining))
        if soonest is None:
            break
        time.sleep(min(max((soonest - wall).total_seconds(), 0.05), remaining))
        next_claim = 0.0
    return delivered

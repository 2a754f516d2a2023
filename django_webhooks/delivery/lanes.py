"""The delivery engine: claim due deliveries, send them, record attempts, decide what follows.

A claim is a lease (``status=in_flight`` + ``lease_expires_at`` + ``lease_token``) on a *lane*:
up to ``CLAIM_BATCH_SIZE`` due deliveries of one subscription, sent one after another by one
sender thread over its keep-alive connection (claiming: :mod:`django_webhooks.delivery.claiming`). The
task renews the leases of its lanes while they work, so a lease can be short: a worker that dies
leaves its leases to expire within ``LEASE_SECONDS``, a running task returns them to ``pending``
(:func:`release_expired_leases`) and sends them again with the same ``webhook-id``: delivery is
at-least-once. Each request is signed with the subscription's secrets as they are when it starts
(:mod:`django_webhooks.delivery.endpoints`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Sized
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from queue import Empty, SimpleQueue
from typing import Protocol

from django.utils import timezone

from .. import tracing
from ..conf import webhooks_settings
from ..exceptions import EventVersionError
from ..models import Delivery, DeliveryAttempt, ErrorClass
from ..signing import webhook_headers
from . import broker
from .claiming import (
    Lane,
    claim_lanes,
    due_count,
    extend_lane,
    lane_share,
    lane_size,
    must_verify,
    next_due,
    release_expired_leases,
    release_unsent,
    renew_leases,
)
from .credentials import send_authenticated
from .endpoints import REFRESH_SECONDS, Endpoint, Endpoints
from .formats import format_headers
from .headers import request_headers
from .outcomes import Sent, record
from .transport import TransportResult, get_transport

logger = logging.getLogger("django_webhooks.delivery")

__all__ = [
    "Poller",
    "Sent",
    "deliver_due",
    "deliver_lane",
    "due_count",
    "release_expired_leases",
]


class Poller(Protocol):
    """Something :func:`deliver_due` asks for new work while it runs (the fan-out of new events)."""

    #: Seconds between polls.
    interval: float

    def poll(self) -> bool:
        """Look for new work now; True if some was found (the task claims at once)."""
        ...

    def keep_alive(self) -> bool:
        """True while the task must not return yet, even with nothing due."""
        ...


#: A task renews a lane's lease once it is this fraction of ``LEASE_SECONDS`` old, looking every
#: such fraction: a working lane's lease never has less than two thirds of its length left.
RENEW_FRACTION = 1 / 6
#: A lane starts no request once its lease is this fraction of ``LEASE_SECONDS`` old: the
#: renewals stopped (the task is stuck), and the lease could end during the request.
LEASE_STOP_FRACTION = 2 / 3
#: A request taking this long marks its endpoint slow in this process for a while.
SLOW_REQUEST_SECONDS = 1.0
SLOW_MEMORY_SECONDS = 60.0
#: For this long after it starts, a task takes at most one lane per subscription, leaving the
#: others to workers starting alongside it: lanes spread over processes send more.
SHARE_LANES_SECONDS = 2.0
#: How often a task with lanes running looks for new work when its last claim found none.
CLAIM_POLL_SECONDS = 0.25
#: The longest an idle task waits before it tries again to claim deliveries that are due but
#: whose subscriptions' lanes other tasks hold.
CAPPED_RETRY_MAX_SECONDS = 2.0


def _send(delivery: Delivery, endpoint: Endpoint) -> Sent:
    """Sign and send one delivery (runs in a sender thread; no database access, except to fetch an
    OAuth2 token this process holds none of: :mod:`django_webhooks.delivery.credentials`).

    The body is the one fixed at fan-out (the delivery's own, or the event's), with the headers
    its format needs (:func:`~django_webhooks.delivery.formats.format_headers`). Traced when
    OpenTelemetry is installed (:mod:`django_webhooks.tracing`): the subscription's
    ``traceparent``, when it opted in, is the request's own span.
    """
    body = (delivery.body or delivery.event.body).encode("utf-8")
    headers: dict[str, str] = {}
    started = timezone.now()
    with tracing.delivery_attempt(delivery, endpoint.url) as spans:
        try:
            if not delivery.body and delivery.event_version not in (None, delivery.event.version):
                raise EventVersionError(
                    f"The body of version {delivery.event_version} could not be built at fan-out; "
                    f"it is not sent in another version."
                )
            secrets = endpoint.keys.valid(started)
            signed = webhook_headers(delivery.message_id, int(started.timestamp()), body, secrets)
            trace_headers = spans.headers() if endpoint.send_traceparent else None
            headers = request_headers(endpoint.headers, signed, trace_headers, format_headers(delivery))
            result, headers = send_authenticated(get_transport(), endpoint.url, body, headers, endpoint.credentials)
        except EventVersionError as exc:
            result = TransportResult(error_class=ErrorClass.INTERNAL, error_message=str(exc))
        except Exception as exc:
            logger.exception("Sending delivery %s failed unexpectedly", delivery.pk)
            result = TransportResult(
                error_class=ErrorClass.INTERNAL, error_message=f"{type(exc).__name__}: {exc}"[:500]
            )
        spans.result(result)
    return Sent(delivery, result, started, headers, endpoint.url)


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


def _lease_stop_at(lane: Lane) -> float:
    """Monotonic time after which the lane starts no request: its lease has not been renewed
    for too long (read again before each request: renewals move it)."""
    if lane.lost:
        return float("-inf")
    return lane.claimed_at + LEASE_STOP_FRACTION * float(webhooks_settings.LEASE_SECONDS)


def send_lane(lane: Lane, endpoints: Endpoints, stop_at: float) -> list[Sent]:
    """Send a lane's deliveries one after another (runs in a sender thread, as :func:`_send` does).

    Each request uses the subscription as :class:`~django_webhooks.delivery.endpoints.Endpoints` last
    read it (waiting for a fresh enough copy). Stops early after a retryable failure (the
    endpoint is in trouble: :attr:`TransportResult.retryable
    <django_webhooks.delivery.transport.TransportResult.retryable>`), once the subscription is
    disabled (unless the lane is ``manual``) or its URL changed to one that must pass the endpoint
    handshake first, once ``stop_at`` (the task's budget) has passed,
    or when the lease is no longer being renewed; the first delivery is sent unless the lease
    itself is already too old (a lane that waited for a thread too long).
    """
    sent: list[Sent] = []
    for delivery in lane.deliveries:
        lease_stop_at = _lease_stop_at(lane)
        until = min(lease_stop_at, stop_at) if sent else lease_stop_at
        if time.monotonic() >= until:
            break
        endpoint = endpoints.current(lane.subscription.pk, until)
        if endpoint is None or not (endpoint.enabled or lane.manual):
            break
        if endpoint.url != lane.subscription.url and not lane.manual and must_verify(lane.subscription):
            break  # the new URL has not answered the handshake (the claim checked the old one)
        lane.request_started = time.monotonic()
        outcome = _send(delivery, endpoint)
        lane.request_started = None
        sent.append(outcome)
        if outcome.result.retryable:
            break
    return sent


def finish_lane(lane: Lane, sent: list[Sent]) -> list[DeliveryAttempt]:
    """Record a lane's attempts and hand what it did not send back to ``pending`` at once."""
    attempts = record(sent)
    unsent = lane.deliveries[len(sent) :]
    if unsent:
        released = release_unsent(lane, unsent)
        logger.info(
            "Lane of subscription %s stopped early; %d delivery(ies) back to pending.", lane.subscription.pk, released
        )
    return attempts


def deliver_lane(lane: Lane) -> list[DeliveryAttempt]:
    """Send ``lane`` now in the calling thread and record it; return its attempts.

    For a lane an operator asked for (:func:`~django_webhooks.delivery.claiming.lease_lane`, a
    test event), sent the way :func:`deliver_due` sends every lane it claims: the subscription's
    URL, headers and secrets read now, :func:`send_lane` (signing, the transport's SSRF guard)
    and :func:`finish_lane` (attempts, retry policy, health, signals).
    """
    endpoints = Endpoints()
    endpoints.load([lane.subscription], time.monotonic())
    stop_at = time.monotonic() + float(webhooks_settings.TASK_TIME_BUDGET)
    return finish_lane(lane, send_lane(lane, endpoints, stop_at))


class _SlowEndpoints:
    """Subscriptions this process saw answer slowly lately (per process, forgotten after a while)."""

    def __init__(self) -> None:
        self.until: dict[int, float] = {}

    def current(self) -> set[int]:
        now = time.monotonic()
        for sid in [sid for sid, until in self.until.items() if until <= now]:
            del self.until[sid]
        return set(self.until)

    def observe(self, lane: Lane, sent: list[Sent]) -> None:
        slowest = max(((outcome.result.duration_ms or 0) for outcome in sent), default=0) / 1000
        if slowest >= SLOW_REQUEST_SECONDS or any(o.result.error_class == ErrorClass.TIMEOUT for o in sent):
            self.until[lane.subscription.pk] = time.monotonic() + SLOW_MEMORY_SECONDS
        else:
            self.until.pop(lane.subscription.pk, None)


_slow_endpoints = _SlowEndpoints()


class _LaneRunner:
    """One lane on one sender thread: its batches, sent one after another.

    ``deliver_due`` feeds the next batch (:func:`~django_webhooks.delivery.claiming.extend_lane`) while
    the current one is being sent; the thread reports each batch on ``completions`` and a final
    ``None`` when it ends. ``held`` (main thread only) lists the batches fed and not yet
    recorded, whose leases the task renews.
    """

    def __init__(
        self, lane: Lane, endpoints: Endpoints, task_deadline: float, completions: SimpleQueue[_Completion]
    ) -> None:
        self.lane = lane
        self.endpoints = endpoints
        self.task_deadline = task_deadline
        self.completions = completions
        self.batches: deque[Lane] = deque([lane])
        self.held: list[Lane] = [lane]
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
        self.held.append(batch)
        return True

    def stop(self) -> None:
        """Send nothing more (the lease was lost)."""
        with self.lock:
            self.stopped = True
        for batch in self.held:
            batch.lost = True

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
                sent = [] if stopped else send_lane(batch, self.endpoints, self.task_deadline)
                self.current = None
                if len(sent) < len(batch.deliveries):
                    with self.lock:
                        self.stopped = True
                self.completions.put((self, (batch, sent)))
        finally:
            self.completions.put((self, None))

    def suspect(self, now: float) -> bool:
        current = self.current
        started = current.request_started if current is not None else None
        return self.lane.suspect or (started is not None and now - started >= SLOW_REQUEST_SECONDS)


#: What a lane's thread reports: a batch and what it sent, or ``(runner, None)`` when it ends.
_Completion = tuple[_LaneRunner, tuple[Lane, list[Sent]] | None]


def _extendable(lane: Lane, sent: Sized) -> bool:
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


class _DeliveryTask:
    """The main loop of one :func:`deliver_due` call (see there); its state between steps."""

    def __init__(self, budget: float, poller: Poller | None) -> None:
        self.started = time.monotonic()
        self.deadline = self.started + budget
        self.share_until = self.started + SHARE_LANES_SECONDS
        self.poller = poller
        self.threads = max(1, int(webhooks_settings.SEND_CONCURRENCY))
        self.suspect_threads = max(1, self.threads // 2)
        self.renew_every = RENEW_FRACTION * float(webhooks_settings.LEASE_SECONDS)
        self.pool = _sender_pool()
        self.endpoints = Endpoints()
        self.completions: SimpleQueue[_Completion] = SimpleQueue()
        self.runners: set[_LaneRunner] = set()
        self.delivered = 0
        self.next_claim = 0.0
        #: Whether the last claim found nothing while deliveries were due, and how long an idle
        #: task waits before it tries again (see :meth:`_claim`).
        self.capped = False
        self.capped_wait = CLAIM_POLL_SECONDS / 2
        #: When the last claim began (wall clock): what fell due after it may not have been seen.
        self.claimed_since: datetime | None = None
        self.next_poll = self.started + poller.interval if poller is not None else float("inf")
        self.next_refresh = float("inf")
        self.next_upkeep = self.started

    def run(self) -> int:
        while True:
            self._poll_if_due()
            now = time.monotonic()
            if now >= self.next_upkeep:
                self._upkeep()
            if self.runners and now >= self.next_refresh:
                self.endpoints.refresh({runner.lane.subscription.pk for runner in self.runners})
                self.next_refresh = time.monotonic() + REFRESH_SECONDS
            if now < self.deadline and len(self.runners) < self.threads and now >= self.next_claim:
                self._claim()
            if self.runners:
                self._next_completion()
            elif not self._idle():
                return self.delivered

    def _polling(self, now: float) -> bool:
        return self.poller is not None and now < self.deadline

    def _poll_if_due(self) -> bool:
        """Ask the poller for new work if its interval has passed; True if it found some."""
        now = time.monotonic()
        if self.poller is None or not self._polling(now) or now < self.next_poll:
            return False
        found = self.poller.poll()
        if found:
            self.next_claim = 0.0
        self.next_poll = time.monotonic() + self.poller.interval
        return found

    def _upkeep(self) -> None:
        """Renew the leases of lanes that are getting old and return expired ones to ``pending``."""
        now = time.monotonic()
        aging = [
            batch
            for runner in self.runners
            for batch in runner.held
            if now - batch.claimed_at >= self.renew_every and not batch.lost
        ]
        if aging:
            lost = {lane.token for lane in renew_leases(aging)}
            for runner in self.runners:
                if runner.lane.token in lost:
                    logger.warning(
                        "A lane of subscription %s lost its lease (not renewed in time); it stops.",
                        runner.lane.subscription.pk,
                    )
                    runner.stop()
        if release_expired_leases():
            self.next_claim = 0.0
        self.next_upkeep = time.monotonic() + self.renew_every

    def _claim(self) -> None:
        now = time.monotonic()
        slow = _slow_endpoints.current()
        suspects = sum(runner.suspect(now) for runner in self.runners)
        held = self._held(now)
        free = self.threads - len(self.runners)
        self.claimed_since = timezone.now()
        lanes = claim_lanes(free, exclude=held, slow=slow, exclude_suspect=suspects >= self.suspect_threads)
        # Found nothing while deliveries are due: other tasks hold their subscriptions' lanes. An
        # idle task then tries again for when one frees: after CLAIM_POLL_SECONDS, doubling while
        # it keeps finding none (up to CAPPED_RETRY_MAX_SECONDS), so a fleet of idle workers
        # around one busy endpoint costs the database a few claims a second.
        capped = not lanes and not self.runners and due_count(limit=1) > 0
        self.capped_wait = min(2 * self.capped_wait, CAPPED_RETRY_MAX_SECONDS) if capped else CLAIM_POLL_SECONDS / 2
        self.capped = capped
        if lanes:
            self.endpoints.load([lane.subscription for lane in lanes], min(lane.claimed_at for lane in lanes))
            if not self.runners:
                self.next_refresh = time.monotonic() + REFRESH_SECONDS
        for lane in lanes:
            runner = _LaneRunner(lane, self.endpoints, self.deadline, self.completions)
            self.runners.add(runner)
            self.pool.submit(runner.run)
            if _extendable(lane, lane.deliveries):
                _extend(runner)
        self.next_claim = time.monotonic() + CLAIM_POLL_SECONDS

    def _held(self, now: float) -> set[int]:
        """Subscriptions this task claims no further lane of: in its first ``SHARE_LANES_SECONDS``
        every one it holds a lane of, then those of which it holds its :func:`lane_share`."""
        lanes = Counter(runner.lane.subscription.pk for runner in self.runners)
        if now < self.share_until or not lanes:
            return set(lanes)
        tasks = broker.workers()
        return {
            runner.lane.subscription.pk
            for runner in self.runners
            if lanes[runner.lane.subscription.pk] >= lane_share(runner.lane.subscription, tasks)
        }

    def _next_completion(self) -> None:
        """Wait for a batch to complete (or for the next claim, poll, refresh or renewal) and record it."""
        now = time.monotonic()
        wake = min(self.next_refresh, self.next_upkeep)
        if now < self.deadline and len(self.runners) < self.threads:
            wake = min(wake, self.next_claim)
        if self._polling(now):
            wake = min(wake, self.next_poll)
        try:
            runner, completed = self.completions.get(timeout=max(0.0, wake - now))
        except Empty:
            return
        if completed is None:
            self.runners.discard(runner)
            self.next_claim = 0.0
            return
        batch, sent = completed
        if time.monotonic() < self.deadline and runner.wants_more() and _extendable(batch, sent):
            _extend(runner)
        runner.held.remove(batch)
        _slow_endpoints.observe(batch, sent)
        finish_lane(batch, sent)
        self.delivered += len(sent)

    def _idle(self) -> bool:
        """Nothing in flight: wait for what falls due next within the budget, polling meanwhile.

        Returns True to claim, False to end the task (nothing due within the budget and no
        poller keeping it alive, or the budget spent).
        """
        if time.monotonic() >= self.deadline:
            return False
        wall = timezone.now()
        due = next_due(wall, self.deadline - time.monotonic(), since=self.claimed_since)
        target = time.monotonic() + (due.at - wall).total_seconds() if due is not None else None
        if self.capped:
            retry = time.monotonic() + self.capped_wait
            target = retry if target is None else min(target, retry)
        while True:
            now = time.monotonic()
            if now >= self.deadline:
                return False
            if target is None and not (self.poller is not None and self.poller.keep_alive()):
                return False
            wake = min(self.deadline, self.next_poll, target if target is not None else float("inf"))
            if wake > now:
                time.sleep(wake - now)
            now = time.monotonic()
            if target is not None and now >= target:
                if due is not None and due.lease:
                    release_expired_leases()
                self.next_claim = 0.0
                return True
            if self._poll_if_due():
                return True


def deliver_due(time_budget: float | None = None, *, poller: Poller | None = None) -> int:
    """Claim and send due deliveries until none is due or the time budget is spent; return the count.

    Sending is a pipeline of lanes: whenever a sender thread is free, another lane is claimed for
    it, so a slow endpoint holds only its own lanes, and a lane is fed its next batch while it
    sends the current one. Lanes to endpoints that are failing or were seen answering slowly
    may take at most half of the ``SEND_CONCURRENCY`` threads, so the others always have room.
    In its first seconds a task takes one lane per subscription, leaving the others to workers
    starting alongside it; after that it keeps to its share of each subscription's cap
    (:func:`~django_webhooks.delivery.claiming.lane_share`: the cap divided among the fleet's
    workers), and a task that found every due subscription's lanes taken tries again after
    ``CLAIM_POLL_SECONDS`` (less often while it keeps finding none), so the lanes of a busy endpoint end up spread over processes instead
    of crowded into one. No lane starts a request after the budget is spent: a task lasts at most
    ``TASK_TIME_BUDGET`` + ``TIMEOUT`` (plus bookkeeping).

    While lanes run, the task renews their leases, re-reads their subscriptions (a request uses
    the secrets, URL and headers current when it starts; a disabled subscription's lane stops)
    and claims again every ``CLAIM_POLL_SECONDS`` while a thread is free. With nothing in
    flight and nothing due, it waits for whatever falls due within its budget (a retry, an
    expiring lease, a rate limit's pace, a circuit's next probe) rather than return, so retries
    go out on time and a dead worker's deliveries are sent again once its leases expire.

    ``poller`` (optional) is asked for new work every ``poller.interval`` seconds until the
    budget is spent, also while lanes are in flight and while the task waits; when it finds
    some the task claims at once, and while ``poller.keep_alive()`` the task does not return
    with nothing due before its budget is spent.
    """
    budget = float(webhooks_settings.TASK_TIME_BUDGET if time_budget is None else time_budget)
    return _DeliveryTask(budget, poller).run()

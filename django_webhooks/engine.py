"""The delivery engine: claim due deliveries, send them, record attempts, decide what follows.

A claim is a lease (``status=in_flight`` + ``lease_expires_at``). A worker that dies leaves its
leases to expire; :func:`release_expired_leases` returns them to ``pending`` and another worker
sends them again with the same ``webhook-id``: delivery is at-least-once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, F, Min, Value, Window
from django.db.models.functions import Coalesce, RowNumber
from django.utils import timezone

from . import health, signals
from .conf import webhooks_settings
from .models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Subscription
from .retry import RetryDecision, get_retry_policy
from .secret_store import signing_secrets
from .signing import webhook_headers
from .transport import TransportResult, get_transport, request_headers

logger = logging.getLogger("django_webhooks.delivery")

#: How long ``deliver_due`` waits for a retry that falls due soon (Svix's first retry is 5 s),
#: rather than leaving it to the next sweep, a minute away.
NEAR_DUE_SECONDS = 5.0
#: Candidates read per claim, as a multiple of the batch size.
CANDIDATE_FACTOR = 4
REDACTED = "<redacted>"
REDACTED_SIGNATURE = "v1,<redacted>"
#: Custom header names whose values are credentials, not kept in attempt records.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
CREDENTIAL_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth")


def lease_capacity(seconds: float | None = None) -> int:
    """Deliveries one batch may hold: what ``SEND_CONCURRENCY`` threads finish within the lease
    (or within ``seconds``, if shorter), every request taking up to ``TIMEOUT``."""
    window = float(webhooks_settings.LEASE_SECONDS)
    if seconds is not None:
        window = min(window, seconds)
    per_request = float(webhooks_settings.TIMEOUT) + 1.0
    per_thread = max(1, int(window // per_request))
    return max(1, int(webhooks_settings.SEND_CONCURRENCY)) * per_thread


def default_max_in_flight() -> int:
    return int(webhooks_settings.MAX_IN_FLIGHT_PER_SUBSCRIPTION)


def _in_flight_counts(now: datetime) -> dict[int, int]:
    """Live leases per subscription (an expired one belongs to a dead worker: not a request)."""
    rows = (
        Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, lease_expires_at__gt=now)
        .values("subscription_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["subscription_id"]: row["n"] for row in rows}


def _ordered_heads(subscription_ids: Iterable[int]) -> dict[int, int]:
    """For ordered subscriptions: the event id of the oldest delivery not yet final."""
    rows = (
        Delivery.objects.filter(
            subscription_id__in=list(subscription_ids),
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT],
        )
        .values("subscription_id")
        .annotate(head=Min("event_id"))
        .order_by()
    )
    return {row["subscription_id"]: row["head"] for row in rows}


def _candidates(now: datetime, limit: int, full: set[int]) -> list[dict[str, Any]]:
    """Due deliveries, at most each subscription's cap per subscription.

    Taken round-robin across subscriptions (every subscription's first, then every second...),
    so one subscription with a backlog cannot fill the batch while others wait.
    """
    per_subscription = Window(
        RowNumber(),
        partition_by=[F("subscription_id")],
        order_by=[F("event_id").asc(), F("id").asc()],
    )
    qs = (
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__lte=now,
            subscription__enabled=True,
        )
        .exclude(subscription__circuit_open_until__gt=now)
        .exclude(subscription__next_send_at__gt=now)
        .exclude(subscription_id__in=full)
        .annotate(
            rank=per_subscription,
            cap=Coalesce(F("subscription__max_in_flight"), Value(default_max_in_flight())),
        )
        .filter(rank__lte=F("cap"))
        .order_by("rank", "next_attempt_at", "id")
        .values("id", "subscription_id", "event_id")
    )
    return list(qs[:limit])


def claim_due(limit: int | None = None) -> list[Delivery]:
    """Lease up to ``limit`` due deliveries to this worker and return them.

    Skips subscriptions that are disabled, have their circuit open, are at their in-flight cap
    or paced by their rate limit, and in ordered subscriptions everything but the oldest
    delivery not yet final. Safe with any number of concurrent workers.
    """
    limit = min(int(limit or webhooks_settings.CLAIM_BATCH_SIZE), lease_capacity())
    if limit <= 0:
        return []
    now = timezone.now()
    lease = now + timedelta(seconds=float(webhooks_settings.LEASE_SECONDS))
    with transaction.atomic():
        in_flight = _in_flight_counts(now)
        caps = dict(Subscription.objects.filter(id__in=list(in_flight)).values_list("id", "max_in_flight"))
        full = {sid for sid, n in in_flight.items() if n >= (caps.get(sid) or default_max_in_flight())}
        candidates = _candidates(now, limit * CANDIDATE_FACTOR, full)
        if not candidates:
            return []
        subscriptions = {
            s["id"]: s
            for s in Subscription.objects.filter(id__in={c["subscription_id"] for c in candidates}).values(
                "id", "max_in_flight", "rate_limit", "next_send_at", "ordered"
            )
        }
        heads = _ordered_heads(sid for sid, s in subscriptions.items() if s["ordered"])
        chosen = _apply_subscription_rules(candidates, subscriptions, in_flight, heads, limit)
        if not chosen:
            return []
        claimed_ids = _lease(chosen, lease)
        _pace(claimed_ids, chosen, subscriptions, now)
    return list(
        Delivery.objects.filter(id__in=claimed_ids, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease)
        .select_related("event", "subscription")
        .order_by("next_attempt_at", "id")
    )


def _apply_subscription_rules(
    candidates: list[dict[str, Any]],
    subscriptions: dict[int, dict[str, Any]],
    in_flight: dict[int, int],
    heads: dict[int, int],
    limit: int,
) -> list[dict[str, Any]]:
    taken: dict[int, int] = defaultdict(int)
    chosen = []
    for candidate in candidates:
        sid = candidate["subscription_id"]
        sub = subscriptions[sid]
        if sub["ordered"] and (heads.get(sid) != candidate["event_id"] or in_flight.get(sid)):
            continue
        room = (sub["max_in_flight"] or default_max_in_flight()) - in_flight.get(sid, 0) - taken[sid]
        if sub["rate_limit"]:
            room = min(room, max(1, int(sub["rate_limit"])) - taken[sid])
        if room <= 0:
            continue
        taken[sid] += 1
        chosen.append(candidate)
        if len(chosen) >= limit:
            break
    return chosen


def _lease(chosen: list[dict[str, Any]], lease: datetime) -> list[int]:
    """Mark ``chosen`` in flight, skipping rows another worker holds or took meanwhile."""
    ids = [c["id"] for c in chosen]
    if connection.features.has_select_for_update_skip_locked:
        ids = list(
            Delivery.objects.select_for_update(skip_locked=True)
            .filter(id__in=ids, status=DeliveryStatus.PENDING)
            .values_list("id", flat=True)
        )
    if ids:
        Delivery.objects.filter(id__in=ids, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease
        )
    # The exact lease timestamp marks our rows: on SQLite the conditional UPDATE may lose some.
    return list(
        Delivery.objects.filter(id__in=ids, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease).values_list(
            "id", flat=True
        )
    )


def _pace(claimed_ids: list[int], chosen: list[dict[str, Any]], subscriptions: dict[int, dict], now: datetime) -> None:
    """Push rate-limited subscriptions' ``next_send_at`` past the deliveries just claimed."""
    claimed = set(claimed_ids)
    per_subscription: dict[int, int] = defaultdict(int)
    for candidate in chosen:
        if candidate["id"] in claimed and subscriptions[candidate["subscription_id"]]["rate_limit"]:
            per_subscription[candidate["subscription_id"]] += 1
    for sid, count in per_subscription.items():
        sub = subscriptions[sid]
        start = max(now, sub["next_send_at"] or now)
        Subscription.objects.filter(id=sid).update(
            next_send_at=start + timedelta(seconds=count / float(sub["rate_limit"]))
        )


def release_expired_leases() -> int:
    """Return in-flight deliveries whose lease expired to ``pending``, due now; return how many."""
    now = timezone.now()
    return Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, lease_expires_at__lt=now).update(
        status=DeliveryStatus.PENDING, lease_expires_at=None, next_attempt_at=now
    )


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
        elif lowered in CREDENTIAL_HEADERS or any(word in lowered for word in CREDENTIAL_WORDS):
            stored[name] = REDACTED
        else:
            stored[name] = value
    return stored


def _send(delivery: Delivery, secrets: list[str]) -> tuple[dict[str, str], Any, datetime]:
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


def _record(sent: list[tuple[Delivery, tuple[dict[str, str], Any, datetime]]]) -> list[DeliveryAttempt]:
    """Store one attempt per sent delivery (one INSERT) and apply each decision."""
    policy = get_retry_policy()
    max_body = int(webhooks_settings.MAX_RESPONSE_BYTES)
    attempts = []
    decisions = []
    for delivery, (headers, result, started) in sent:
        delivery.attempts += 1
        decision = policy.decide(delivery, result, timezone.now())
        decisions.append(decision)
        body = result.body or b""
        attempts.append(
            DeliveryAttempt(
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
        )
    DeliveryAttempt.objects.bulk_create(attempts)
    for (delivery, _), attempt, decision in zip(sent, attempts, decisions, strict=True):
        _apply(delivery, attempt, decision)
    return attempts


def _apply(delivery: Delivery, attempt: DeliveryAttempt, decision: RetryDecision) -> None:
    now = timezone.now()
    final = decision.status != DeliveryStatus.PENDING
    changes = {
        "status": decision.status,
        "attempts": delivery.attempts,
        "next_attempt_at": decision.next_attempt_at,
        "last_status_code": attempt.response_status,
        "last_error": "" if decision.status == DeliveryStatus.SUCCEEDED else decision.reason[:255],
        "completed_at": now if final else None,
        "lease_expires_at": None,
    }
    subscription = delivery.subscription
    with transaction.atomic():
        updated = Delivery.objects.filter(
            pk=delivery.pk, status=DeliveryStatus.IN_FLIGHT, lease_expires_at=delivery.lease_expires_at
        ).update(**changes)
        health.record_outcome(subscription, attempt.succeeded, now)
        if updated and decision.disable_subscription and subscription.enabled:
            from .operations import disable

            disable(subscription, decision.reason)
    for name, value in changes.items():
        setattr(delivery, name, value)
    outcome = "succeeded" if attempt.succeeded else ("retry" if decision.will_retry else decision.status)
    log = logger.info if attempt.succeeded else logger.warning
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
                "next_attempt_at": decision.next_attempt_at.isoformat() if decision.next_attempt_at else None,
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
    elif decision.will_retry:
        signals.delivery_failed.send(
            sender=Delivery, delivery=delivery, attempt=attempt, next_attempt_at=decision.next_attempt_at
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


def deliver_due(time_budget: float | None = None) -> int:
    """Claim and send due deliveries until none is due or the time budget is spent; return the count.

    Sending is a pipeline: whenever half of the ``SEND_CONCURRENCY`` sender threads are free, more
    deliveries are claimed for them, so a slow endpoint holds only its own threads, never a
    whole batch. Claims made late in the budget are sized to end with it: a task lasts at most
    ``TASK_TIME_BUDGET`` + ``TIMEOUT`` (plus bookkeeping). A retry falling due within a few
    seconds is waited for, so a quick first retry does not wait for the next sweep.
    """
    budget = float(webhooks_settings.TASK_TIME_BUDGET if time_budget is None else time_budget)
    deadline = time.monotonic() + budget
    threads = max(1, int(webhooks_settings.SEND_CONCURRENCY))
    pool = _sender_pool()
    secrets: dict[int, list[str]] = {}
    running: dict[Future, Delivery] = {}
    delivered = 0
    while True:
        remaining = deadline - time.monotonic()
        free = threads - len(running)
        if remaining > 0 and (not running or free >= max(1, threads // 2)):
            room = min(int(webhooks_settings.CLAIM_BATCH_SIZE), lease_capacity(remaining) - len(running))
            batch = claim_due(room) if room > 0 else []
            _secrets_for(batch, secrets)
            for delivery in batch:
                running[pool.submit(_send, delivery, secrets[delivery.subscription_id])] = delivery
        if running:
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            sent = [(running.pop(future), future.result()) for future in done]
            _record(sent)
            delivered += len(sent)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        now = timezone.now()
        soonest = _next_due_soon(now, min(NEAR_DUE_SECONDS, remaining))
        if soonest is None:
            break
        time.sleep(min(max((soonest - now).total_seconds(), 0.05), remaining))
    return delivered


def due_count(limit: int = 10_000) -> int:
    """How many deliveries are due now (bounded by ``limit``, to stay cheap)."""
    now = timezone.now()
    return (
        Delivery.objects.filter(status=DeliveryStatus.PENDING, next_attempt_at__lte=now, subscription__enabled=True)
        .exclude(subscription__circuit_open_until__gt=now)
        .values("id")[:limit]
        .count()
    )

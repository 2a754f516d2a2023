"""Claiming due deliveries as lanes: leases, in-flight caps, circuit, ordered mode, rate limit.

A *lane* is up to ``CLAIM_BATCH_SIZE`` due deliveries of one subscription, leased together
under one ``lease_token`` and sent one after another by one sender thread over its keep-alive
connection. A subscription's cap (``max_in_flight`` or ``MAX_IN_FLIGHT_PER_SUBSCRIPTION``)
limits its lanes, i.e. its concurrent requests, across every worker of every machine: the lanes
in use are the distinct lease tokens among its unexpired ``in_flight`` rows.

A claim costs the same with 100 or 100,000 deliveries waiting: subscriptions with due work are
found with one index probe each (``dwh_delivery_sub_due_idx``), and each lane reads only its
own rows from the same index. On PostgreSQL the claimed subscription rows are locked
(``FOR NO KEY UPDATE SKIP LOCKED``) for the claim's short transaction, so two workers never
count a subscription's lanes at the same time and a cap cannot be exceeded; a worker skips a
subscription another one is claiming instead of waiting. SQLite serializes writing
transactions (``transaction_mode`` ``IMMEDIATE``), which gives the same guarantee.

A lease lasts ``LEASE_SECONDS`` and the task holding it renews it while it works
(:func:`renew_leases`), so a short lease costs nothing to a slow lane; a dead worker's leases
simply stop being renewed. The lease token names the holder: every update a lane makes to its
rows is guarded by it, so a late finisher never overwrites a delivery another lane took over. A
running task returns expired leases to ``pending`` (:func:`release_expired_leases`) and waits
for the next one to expire when it has nothing else to do (:func:`next_due`); the sweeper does
the same once a minute, as a safety net.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypedDict

from django.db import connection, transaction
from django.db.models import Case, Count, F, IntegerField, Min, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..conf import webhooks_settings
from ..models import Delivery, DeliveryStatus, Subscription

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations

#: Candidate subscriptions read per claim beyond the lanes wanted (some may turn out full).
EXTRA_CANDIDATES = 8


@dataclass
class Lane:
    """Deliveries of one subscription leased together; sent in order by one sender thread."""

    token: str
    subscription: Subscription
    deliveries: list[Delivery]
    lease_expires_at: datetime
    #: ``time.monotonic()`` when the lease was taken or last renewed (it ends ``LEASE_SECONDS`` later).
    claimed_at: float
    #: The subscription was failing or known slow when claimed.
    suspect: bool = False
    #: ``time.monotonic()`` when the request in progress started; None between requests.
    request_started: float | None = field(default=None, compare=False)
    #: Set when a renewal found the lease taken over: the lane sends nothing more.
    lost: bool = field(default=False, compare=False)
    #: Leased at an operator's request (:func:`lease_lane`, a test event), not claimed: it goes
    #: out even while its subscription is disabled.
    manual: bool = False


def deliverable(now: datetime, via: str = "") -> Q:
    """The one rule for a subscription whose due deliveries a worker may send now: enabled, its
    circuit not open, its endpoint verified if it must be (:func:`verified_or_exempt`). ``via`` is
    the path to the subscription (``"subscription__"`` from a delivery)."""
    return Q(**{f"{via}enabled": True}) & ~Q(**{f"{via}circuit_open_until__gt": now}) & verified_or_exempt(via)


#: Event columns a claimed delivery never reads (it sends the event's fixed ``body``): left
#: out of the claim's join so the largest values are not fetched twice.
UNSENT_EVENT_FIELDS = ("event__payload", "event__schema_errors", "event__fanned_out_at")


def must_verify(subscription: Subscription) -> bool:
    """Whether ``subscription`` sends only after its endpoint passed the handshake
    (:mod:`django_webhooks.delivery.handshake`): ``REQUIRE_ENDPOINT_VERIFICATION`` or its own
    ``verify_endpoint``."""
    return bool(webhooks_settings.REQUIRE_ENDPOINT_VERIFICATION or subscription.verify_endpoint)


def verified_or_exempt(via: str = "") -> Q:
    """Subscriptions that need no handshake (:func:`must_verify`), or whose current URL passed it.

    Compared with the URL itself, so a URL changed by any path (even ``QuerySet.update()``) is
    unverified until it answers the challenge.
    """
    verified = Q(**{f"{via}verified_url": F(f"{via}url")})
    if webhooks_settings.REQUIRE_ENDPOINT_VERIFICATION:
        return verified
    return Q(**{f"{via}verify_endpoint": False}) | verified


def default_max_in_flight() -> int:
    return int(webhooks_settings.MAX_IN_FLIGHT_PER_SUBSCRIPTION)


def in_flight_cap() -> Case:
    """A subscription's cap on lanes (concurrent requests), as an SQL expression over its row.

    One for an ordered subscription, else its ``max_in_flight``, else
    ``MAX_IN_FLIGHT_PER_SUBSCRIPTION``. The claim annotates each candidate with it
    (``Subscription.cap``) and counts lanes against that value both in SQL and after locking.
    """
    return Case(
        When(ordered=True, then=Value(1)),
        default=Coalesce(F("max_in_flight"), Value(default_max_in_flight())),
        output_field=IntegerField(),
    )


def cap_of(subscription: Subscription) -> int:
    """:func:`in_flight_cap` of a loaded subscription."""
    if subscription.ordered:
        return 1
    return int(subscription.max_in_flight or default_max_in_flight())


def lane_share(subscription: Subscription, tasks: int) -> int:
    """The lanes of ``subscription`` that one of ``tasks`` delivery tasks running at once keeps
    for itself: its cap divided among as many tasks as it has lanes, rounded up. Lanes spread over
    processes send more than lanes crowded into one (each process has one interpreter lock)."""
    cap = cap_of(subscription)
    return -(-cap // max(1, min(tasks, cap)))


def lane_size(subscription: Subscription, slow: Collection[int] = ()) -> int:
    """Deliveries one lane of ``subscription`` may hold.

    One for ordered subscriptions (each waits for the one before), for failing ones (a probe)
    and for ones this worker saw answer slowly; at most ``rate_limit`` for paced ones.
    """
    if subscription.ordered or subscription.consecutive_failures > 0 or subscription.pk in slow:
        return 1
    size = max(1, int(webhooks_settings.CLAIM_BATCH_SIZE))
    if subscription.rate_limit:
        size = min(size, max(1, int(subscription.rate_limit)))
    return size


def _live_lanes(now: datetime) -> Q:
    return Q(status=DeliveryStatus.IN_FLIGHT, lease_expires_at__gt=now)


def lanes_in_use(subscription_ids: Collection[int], now: datetime | None = None) -> dict[int, int]:
    """Live lanes (distinct lease tokens of unexpired leases) per subscription."""
    now = now or timezone.now()
    rows = (
        Delivery.objects.filter(_live_lanes(now), subscription_id__in=list(subscription_ids))
        .values("subscription_id")
        .annotate(n=Count("lease_token", distinct=True))
        .order_by()
    )
    return {row["subscription_id"]: row["n"] for row in rows}


class _CandidateFields(TypedDict):
    #: When its oldest pending delivery is due.
    due_at: datetime
    #: Its live lanes, as counted by the query.
    lanes: int
    #: :func:`in_flight_cap`.
    cap: int


def _candidates(
    now: datetime, limit: int, exclude: Collection[int], exclude_failing: bool
) -> list[WithAnnotations[Subscription, _CandidateFields]]:
    """Enabled subscriptions with due work and a free lane, oldest due first, locked on PostgreSQL."""
    oldest_due = (
        Delivery.objects.filter(subscription=OuterRef("pk"), status=DeliveryStatus.PENDING)
        .order_by("next_attempt_at")
        .values("next_attempt_at")[:1]
    )
    in_use = (
        Delivery.objects.filter(_live_lanes(now), subscription=OuterRef("pk"))
        .order_by()
        .values("subscription")
        .annotate(n=Count("lease_token", distinct=True))
        .values("n")
    )
    qs = (
        Subscription.objects.filter(deliverable(now))
        .exclude(next_send_at__gt=now)
        .annotate(
            due_at=Subquery(oldest_due),
            lanes=Coalesce(Subquery(in_use, output_field=IntegerField()), 0),
            cap=in_flight_cap(),
        )
        .filter(due_at__lte=now, lanes__lt=F("cap"))
        .order_by("due_at", "id")
    )
    if exclude:
        qs = qs.exclude(pk__in=list(exclude))
    if exclude_failing:
        qs = qs.filter(consecutive_failures=0)
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True, no_key=True, of=("self",))
    return list(qs[:limit])


def _ordered_heads(subscription_ids: list[int]) -> dict[int, int]:
    """For ordered subscriptions: the event id of the oldest delivery not yet final."""
    if not subscription_ids:
        return {}
    rows = (
        Delivery.objects.filter(
            subscription_id__in=subscription_ids,
            status__in=[DeliveryStatus.PENDING, DeliveryStatus.IN_FLIGHT],
        )
        .values("subscription_id")
        .annotate(head=Min("event_id"))
        .order_by()
    )
    return {row["subscription_id"]: row["head"] for row in rows}


def _due_rows(subscription: Subscription, now: datetime, size: int, head: int | None) -> list[int]:
    rows = Delivery.objects.filter(
        subscription_id=subscription.pk, status=DeliveryStatus.PENDING, next_attempt_at__lte=now
    )
    if head is not None:
        rows = rows.filter(event_id=head)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True, of=("self",))
    return list(rows.order_by("next_attempt_at", "id").values_list("id", flat=True)[:size])


def claim_lanes(
    max_lanes: int,
    *,
    max_deliveries: int | None = None,
    exclude: Collection[int] = (),
    slow: Collection[int] = (),
    exclude_suspect: bool = False,
) -> list[Lane]:
    """Lease up to ``max_lanes`` lanes, at most one per subscription, and return them.

    Skips subscriptions that are disabled, have their circuit open, wait for their endpoint
    handshake, use all their lanes or are paced by their rate limit, and in ordered
    subscriptions everything but the oldest delivery not yet final. ``exclude`` names subscriptions to leave alone; ``slow`` those this worker
    saw answer slowly (lanes of one); ``exclude_suspect`` also leaves out slow and failing ones.
    ``max_deliveries`` bounds the deliveries claimed in all. Safe with any number of workers.
    """
    if max_lanes <= 0 or (max_deliveries is not None and max_deliveries <= 0):
        return []
    now = timezone.now()
    lease_seconds = float(webhooks_settings.LEASE_SECONDS)
    lease = now + timedelta(seconds=lease_seconds)
    claimed_at = time.monotonic()
    budget = max_deliveries if max_deliveries is not None else max_lanes * int(webhooks_settings.CLAIM_BATCH_SIZE)
    skip = set(exclude) | (set(slow) if exclude_suspect else set())
    planned: list[tuple[Subscription, str, list[int]]] = []
    with transaction.atomic():
        candidates = _candidates(now, max_lanes + EXTRA_CANDIDATES, skip, exclude_suspect)
        if not candidates:
            return []
        in_use = lanes_in_use([s.pk for s in candidates], now)
        heads = _ordered_heads([s.pk for s in candidates if s.ordered])
        for subscription in candidates:
            if len(planned) >= max_lanes or budget <= 0:
                break
            # Counted again now that the rows are locked: the candidates' own count may predate a
            # claim another worker committed meanwhile.
            if in_use.get(subscription.pk, 0) >= subscription.cap:
                continue
            size = min(lane_size(subscription, slow), budget)
            ids = _due_rows(subscription, now, size, heads.get(subscription.pk) if subscription.ordered else None)
            if not ids:
                continue
            token = uuid.uuid4().hex
            Delivery.objects.filter(id__in=ids, status=DeliveryStatus.PENDING).update(
                status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease, lease_token=token
            )
            planned.append((subscription, token, ids))
            budget -= len(ids)
            if subscription.rate_limit:
                _pace(subscription, subscription.rate_limit, len(ids), now)
    return _load_lanes(planned, lease, claimed_at, slow)


def lease_lane(subscription: Subscription, deliveries: Collection[Delivery]) -> Lane:
    """Lease ``deliveries`` of ``subscription`` as one lane now, whatever its cap, circuit or pace.

    For deliveries an operator asked for (a test event): call it in the transaction that creates
    them, so that no worker claims them first, then send the lane with
    :func:`~django_webhooks.delivery.lanes.deliver_lane`. Nobody renews this lease: the lane is
    sent at once.
    """
    now = timezone.now()
    lease = now + timedelta(seconds=float(webhooks_settings.LEASE_SECONDS))
    token = uuid.uuid4().hex
    Delivery.objects.filter(id__in=[d.pk for d in deliveries]).update(
        status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease, lease_token=token
    )
    for delivery in deliveries:
        delivery.subscription = subscription
        delivery.status = DeliveryStatus.IN_FLIGHT
        delivery.lease_expires_at = lease
        delivery.lease_token = token
    return Lane(token, subscription, list(deliveries), lease, time.monotonic(), manual=True)


def extend_lane(lane: Lane) -> Lane | None:
    """Lease the next due deliveries of ``lane``'s subscription under the same lane token.

    The lane's sender thread takes them up when it is done with what it holds, with no gap for
    bookkeeping between the two; the lane still counts once against the cap. Returns None when
    nothing more is due or the subscription was disabled or its circuit opened meanwhile.
    """
    subscription = lane.subscription
    now = timezone.now()
    lease = now + timedelta(seconds=float(webhooks_settings.LEASE_SECONDS))
    claimed_at = time.monotonic()
    with transaction.atomic():
        rows = (
            Delivery.objects.filter(
                subscription_id=subscription.pk,
                status=DeliveryStatus.PENDING,
                next_attempt_at__lte=now,
            )
            .filter(deliverable(now, "subscription__"))
            .select_related("event")
            .defer(*UNSENT_EVENT_FIELDS)
        )
        if connection.features.has_select_for_update_skip_locked:
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        deliveries = list(rows.order_by("next_attempt_at", "id")[: lane_size(subscription)])
        if not deliveries:
            return None
        ids = [delivery.pk for delivery in deliveries]
        leased = Delivery.objects.filter(id__in=ids, status=DeliveryStatus.PENDING).update(
            status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease, lease_token=lane.token
        )
    if leased != len(ids):
        deliveries = list(
            Delivery.objects.filter(id__in=ids, lease_token=lane.token, lease_expires_at=lease)
            .select_related("event")
            .defer(*UNSENT_EVENT_FIELDS)
            .order_by("next_attempt_at", "id")
        )
    for delivery in deliveries:
        delivery.subscription = subscription
        delivery.status = DeliveryStatus.IN_FLIGHT
        delivery.lease_expires_at = lease
        delivery.lease_token = lane.token
    return Lane(lane.token, subscription, deliveries, lease, claimed_at) if deliveries else None


def _pace(subscription: Subscription, rate_limit: int, count: int, now: datetime) -> None:
    """Push a rate-limited subscription's ``next_send_at`` past the deliveries just claimed."""
    start = max(now, subscription.next_send_at or now)
    subscription.next_send_at = start + timedelta(seconds=count / float(rate_limit))
    Subscription.objects.filter(pk=subscription.pk).update(next_send_at=subscription.next_send_at)


def _load_lanes(
    planned: list[tuple[Subscription, str, list[int]]], lease: datetime, claimed_at: float, slow: Collection[int]
) -> list[Lane]:
    if not planned:
        return []
    by_token: dict[str, list[Delivery]] = {token: [] for _, token, _ in planned}
    rows = (
        Delivery.objects.filter(lease_token__in=list(by_token), status=DeliveryStatus.IN_FLIGHT, lease_expires_at=lease)
        .select_related("event")
        .defer(*UNSENT_EVENT_FIELDS)
        .order_by("next_attempt_at", "id")
    )
    for delivery in rows:
        by_token[delivery.lease_token].append(delivery)
    lanes = []
    for subscription, token, _ in planned:
        deliveries = by_token[token]
        if not deliveries:
            continue
        for delivery in deliveries:
            delivery.subscription = subscription
        suspect = subscription.consecutive_failures > 0 or subscription.pk in slow
        lanes.append(Lane(token, subscription, deliveries, lease, claimed_at, suspect=suspect))
    return lanes


def release_unsent(lane: Lane, deliveries: Collection[Delivery]) -> int:
    """Hand ``deliveries`` of ``lane`` back to ``pending`` untouched (no attempt, same due time)."""
    ids = [d.pk for d in deliveries]
    if not ids:
        return 0
    released = Delivery.objects.filter(id__in=ids, status=DeliveryStatus.IN_FLIGHT, lease_token=lane.token).update(
        status=DeliveryStatus.PENDING, lease_expires_at=None, lease_token=""
    )
    for delivery in deliveries:
        delivery.status = DeliveryStatus.PENDING
        delivery.lease_expires_at = None
        delivery.lease_token = ""
    return released


def renew_leases(lanes: Collection[Lane]) -> list[Lane]:
    """Extend the leases of ``lanes`` (batches not yet recorded) to ``LEASE_SECONDS`` from now.

    One ``UPDATE`` for all of them, guarded by their tokens. Returns the lanes that lost a
    delivery meanwhile (their lease expired and another lane took it) and marks them ``lost``.
    """
    ids = [delivery.pk for lane in lanes for delivery in lane.deliveries]
    if not ids:
        return []
    renewed_at = time.monotonic()
    lease = timezone.now() + timedelta(seconds=float(webhooks_settings.LEASE_SECONDS))
    tokens = {lane.token for lane in lanes}
    held = Delivery.objects.filter(id__in=ids, status=DeliveryStatus.IN_FLIGHT, lease_token__in=tokens)
    renewed = held.update(lease_expires_at=lease)
    lost = []
    if renewed < len(ids):
        still = set(held.values_list("id", "lease_token"))
        lost = [lane for lane in lanes if any((d.pk, lane.token) not in still for d in lane.deliveries)]
    for lane in lanes:
        lane.lease_expires_at = lease
        lane.claimed_at = renewed_at
        for delivery in lane.deliveries:
            delivery.lease_expires_at = lease
    for lane in lost:
        lane.lost = True
    return lost


class NextDue(NamedTuple):
    """When something falls due next, and whether it is an expiring lease (to release first)."""

    at: datetime
    lease: bool


def next_due(now: datetime, horizon: float, since: datetime | None = None) -> NextDue | None:
    """The next moment within ``horizon`` seconds that a claim could find work it did not find.

    A retry falling due, a lease expiring (its worker died, or it will be renewed: then this is
    asked again), a rate-limited subscription's pace or an open circuit letting its next probe go.
    ``since`` is when the last claim began (default ``now``): what fell due after it counts, even
    if that is already past. Three indexed aggregates; only enabled subscriptions count.
    """
    since = now if since is None else min(since, now)
    until = now + timedelta(seconds=horizon)
    retry = (
        Delivery.objects.filter(
            status=DeliveryStatus.PENDING,
            next_attempt_at__gt=since,
            next_attempt_at__lte=until,
        )
        .filter(deliverable(now, "subscription__"))
        .aggregate(at=Min("next_attempt_at"))["at"]
    )
    lease = Delivery.objects.filter(
        status=DeliveryStatus.IN_FLIGHT, lease_expires_at__lte=until, subscription__enabled=True
    ).aggregate(at=Min("lease_expires_at"))["at"]
    paced = Q(next_send_at__gt=since, next_send_at__lte=until)
    probe = Q(circuit_open_until__gt=since, circuit_open_until__lte=until)
    # One pending delivery per subscription, as a subquery with a LIMIT: PostgreSQL runs it as one
    # index probe per paced or probing subscription, where an EXISTS may become a semi-join that
    # reads every pending delivery (150 ms at a million).
    a_pending = Delivery.objects.filter(subscription=OuterRef("pk"), status=DeliveryStatus.PENDING).values("id")[:1]
    waiting = (
        Subscription.objects.filter(paced | probe, verified_or_exempt(), enabled=True)
        .annotate(a_pending=Subquery(a_pending))
        .filter(a_pending__isnull=False)
        .aggregate(paced=Min("next_send_at", filter=paced), probe=Min("circuit_open_until", filter=probe))
    )
    candidates = [NextDue(at, False) for at in (retry, waiting["paced"], waiting["probe"]) if at is not None]
    if lease is not None:
        candidates.append(NextDue(lease, True))
    return min(candidates, default=None)


def release_expired_leases() -> int:
    """Return in-flight deliveries whose lease expired to ``pending``, due now; return how many."""
    now = timezone.now()
    return Delivery.objects.filter(status=DeliveryStatus.IN_FLIGHT, lease_expires_at__lt=now).update(
        status=DeliveryStatus.PENDING, lease_expires_at=None, lease_token="", next_attempt_at=now
    )


def due_count(limit: int = 10_000) -> int:
    """How many deliveries are due now (bounded by ``limit``, to stay cheap)."""
    now = timezone.now()
    return (
        Delivery.objects.filter(
            deliverable(now, "subscription__"), status=DeliveryStatus.PENDING, next_attempt_at__lte=now
        )
        .values("id")[:limit]
        .count()
    )

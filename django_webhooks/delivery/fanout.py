"""Fan-out (worker side): match pending events to subscriptions and create their deliveries.

Runs in a django-q2 task, never in the request, so the write path costs the same with 0 or
10,000 subscriptions. Safe to run twice on the same events: PostgreSQL workers skip events
another worker has locked, SQLite serializes writers, and deliveries are unique per event and
subscription.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from .. import rows
from ..catalog import is_operational, thin_types, type_matches
from ..metrics import recording as metrics
from ..models import Delivery, DeliveryStatus, Event, PayloadFormat, Subscription
from .formats import EventRenderer, envelope_data, render

logger = logging.getLogger("django_webhooks.delivery.fanout")

EVENT_FIELDS = (
    "id",
    "event_type",
    "payload",
    "owner_id",
    "schema_errors",
    "body",
    "version",
    "created_at",
    "fanned_out_at",
)
SUBSCRIPTION_FIELDS = ("id", "owner_id", "event_types", "filters", "payload_format", "event_versions")
_NOT_FOUND = object()


def _lookup(data: Any, path: str) -> Any:
    for step in path.split("."):
        if isinstance(data, dict) and step in data:
            data = data[step]
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return _NOT_FOUND
    return data


def filters_match(filters: dict | None, data: Any) -> bool:
    """Every key of ``filters`` is a dotted path into ``data`` whose value equals the filter's value."""
    return not filters or all(_lookup(data, path) == value for path, value in filters.items())


class Rendering(NamedTuple):
    """How a subscription wants its events: its payload format and its pinned versions."""

    payload_format: str = PayloadFormat.STANDARD
    event_versions: dict[str, Any] | None = None


class SubscriptionIndex:
    """Enabled subscriptions indexed by owner and type pattern, for matching a batch of events.

    Rows are :data:`SUBSCRIPTION_FIELDS`; without the last two, every subscription gets the
    standard format and the current versions.
    """

    def __init__(self, rows: Iterable[tuple[Any, ...]]) -> None:
        self._by_owner: dict[str | None, dict[str, list[tuple[int, dict]]]] = defaultdict(lambda: defaultdict(list))
        self._matches: dict[tuple[str, str], bool] = {}
        self._renderings: dict[int, Rendering] = {}
        for sub_id, owner_id, event_types, filters, *rendering in rows:
            for pattern in dict.fromkeys(event_types or ()):
                self._by_owner[owner_id][pattern].append((sub_id, filters or {}))
            if rendering and (rendering[0] != PayloadFormat.STANDARD or rendering[1]):
                self._renderings[sub_id] = Rendering(rendering[0], rendering[1] or None)

    def rendering(self, sub_id: int) -> Rendering:
        """The format and pins of subscription ``sub_id`` (the defaults for most)."""
        return self._renderings.get(sub_id) or Rendering()

    @classmethod
    def load(cls, owner_ids: Iterable[str | None], using: str | None = None) -> SubscriptionIndex:
        owners = {owner for owner in owner_ids if owner is not None}
        query = Q(owner_id__isnull=True)
        if owners:
            query |= Q(owner_id__in=owners)
        rows = Subscription.objects.using(using).filter(query, enabled=True).values_list(*SUBSCRIPTION_FIELDS)
        return cls(rows.iterator(chunk_size=5000))

    def _type_matches(self, pattern: str, event_type: str) -> bool:
        key = (pattern, event_type)
        found = self._matches.get(key)
        if found is None:
            found = self._matches[key] = type_matches(pattern, event_type)
        return found

    def match(self, event: Event) -> list[int]:
        """Ids of the subscriptions ``event`` goes to, in no particular order, without repeats.

        An operational event (``webhook.endpoint.*``) never goes to the subscription it is about:
        that endpoint is the one in trouble, and its own alerts would only add to its failures.
        """
        owners = (event.owner_id, None) if event.owner_id is not None else (None,)
        about = None
        if is_operational(event.event_type) and isinstance(event.payload, dict):
            about = event.payload.get("subscription_id")
        matched: dict[int, None] = {}
        for owner in owners:
            patterns = self._by_owner.get(owner)
            if not patterns:
                continue
            for pattern, subscriptions in patterns.items():
                if not self._type_matches(pattern, event.event_type):
                    continue
                for sub_id, filters in subscriptions:
                    if sub_id == about:
                        continue
                    if not filters or filters_match(filters, event.payload):
                        matched[sub_id] = None
        return list(matched)


def build_body(event: Event, *, thin: bool | None = None) -> str:
    """The envelope ``{"type", "timestamp", "data"}`` as compact JSON (Standard Webhooks), in the
    version the event was recorded in.

    Computed once at fan-out and stored in ``Event.body``; every delivery of the standard format
    and that version, and every retry, sends these exact bytes (other formats and versions:
    :mod:`django_webhooks.delivery.formats`). ``thin`` defaults to the event type's catalog setting.
    """
    if event.body:
        return event.body
    if thin is None:
        thin = event.event_type in thin_types([event.event_type])
    return render(event, PayloadFormat.STANDARD, envelope_data(event, thin))


def new_delivery(event: Event, sub_id: int, rendering: Rendering, renderer: EventRenderer, now: datetime) -> Delivery:
    """The delivery of ``event`` to subscription ``sub_id``, its body in the format and version it asks for.

    When that body cannot be built (no converter path, a converter failed), the delivery is
    recorded ``failed`` at once with the reason, and nothing is sent: never a wrong version.
    """
    version = renderer.version_for(rendering.event_versions)
    rendered = renderer.render(rendering.payload_format, version)
    delivery = Delivery(
        event_id=event.pk,
        subscription_id=sub_id,
        created_at=now,
        next_attempt_at=now,
        payload_format=rendering.payload_format,
        # Set when the body is of another version than the event's (thin events are not).
        event_version=version if version != event.version and (rendered.body or rendered.error) else None,
        body=rendered.body,
    )
    if rendered.error:
        logger.error("Event %s not sent to subscription %s: %s", event.pk, sub_id, rendered.error)
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        delivery.completed_at = now
        delivery.last_error = rendered.error[: Delivery._meta.get_field("last_error").max_length]
    return delivery


def matching_subscriptions(event: Event) -> list[Subscription]:
    """Enabled subscriptions ``event`` goes to: owner, type (exact or pattern) and filters."""
    using = router.db_for_read(Subscription)
    ids = SubscriptionIndex.load([event.owner_id], using=using).match(event)
    return list(Subscription.objects.using(using).filter(pk__in=ids).order_by("pk")) if ids else []


def _fan_out_events(events: list[Event], using: str) -> list[Delivery]:
    now = timezone.now()
    deliverable: list[Event] = []
    for event in events:
        event.fanned_out_at = now
        if event.schema_errors:
            logger.warning(
                "Event %s (%s) not sent: its data failed the schema: %s",
                event.pk,
                event.event_type,
                "; ".join(map(str, event.schema_errors)),
            )
        else:
            deliverable.append(event)
    deliveries: list[Delivery] = []
    if deliverable:
        index = SubscriptionIndex.load({event.owner_id for event in deliverable}, using=using)
        thin = thin_types(event.event_type for event in deliverable)
        for event in deliverable:
            is_thin = event.event_type in thin
            event.body = build_body(event, thin=is_thin)
            renderer = EventRenderer(event, is_thin)
            deliveries.extend(
                new_delivery(event, sub_id, index.rendering(sub_id), renderer, now) for sub_id in index.match(event)
            )
    _store(events, deliveries, using)
    fanned_out_types = [event.event_type for event in events]
    transaction.on_commit(lambda: metrics.events_fanned_out(fanned_out_types), using=using)
    return deliveries


#: The delivery columns written at fan-out (every one but the id).
_DELIVERY_COLUMNS = (
    "event",
    "subscription",
    "message_id",
    "status",
    "attempts",
    "next_attempt_at",
    "lease_expires_at",
    "lease_token",
    "last_status_code",
    "last_error",
    "payload_format",
    "event_version",
    "body",
    "created_at",
    "completed_at",
)


def _store(events: list[Event], deliveries: list[Delivery], using: str) -> None:
    """Write the events' bodies and fan-out time, and insert their deliveries (a delivery that
    exists already, from an earlier fan-out of the same event, is kept): one precompiled
    multi-row statement each (:mod:`django_webhooks.rows`), not the ORM's per-field bulk paths."""
    adapt = connections[using].ops.adapt_datetimefield_value
    rows.update_rows(Event, ("body", "fanned_out_at"), [(e.pk, e.body, adapt(e.fanned_out_at)) for e in events], using)
    if not deliveries:
        return
    rows.insert_instances(Delivery, _DELIVERY_COLUMNS, deliveries, using, 1000, ignore_conflicts=True)


def fan_out(event: Event) -> list[Delivery]:
    """Create the deliveries of one event (none if it was already fanned out or failed its schema)."""
    using = router.db_for_write(Event)
    with transaction.atomic(using=using):
        queryset = Event.objects.using(using).filter(pk=event.pk, fanned_out_at__isnull=True)
        if connections[using].features.has_select_for_update:
            queryset = queryset.select_for_update()
        locked = list(queryset.only(*EVENT_FIELDS))
        if not locked:
            return []
        deliveries = _fan_out_events(locked, using)
    event.body, event.fanned_out_at = locked[0].body, locked[0].fanned_out_at
    return deliveries


def fan_out_pending(limit: int = 1000) -> int:
    """Fan out up to ``limit`` events with ``fanned_out_at`` NULL, oldest first; returns how many."""
    using = router.db_for_write(Event)
    pending = Event.objects.using(using).filter(fanned_out_at__isnull=True)
    if not connections[using].in_atomic_block and not pending.exists():
        return 0  # the common answer of a poll, without taking (SQLite: the write) lock
    features = connections[using].features
    with transaction.atomic(using=using):
        queryset = pending.order_by("id")
        if features.has_select_for_update_skip_locked:
            queryset = queryset.select_for_update(skip_locked=True)
        events = list(queryset.only(*EVENT_FIELDS)[:limit])
        if not events:
            return 0
        _fan_out_events(events, using)
    return len(events)


def fan_out_all_pending(limit: int = 1000, max_batches: int = 100) -> int:
    """:func:`fan_out_pending` batch after batch until a batch is not full; returns how many."""
    total = 0
    for _ in range(max_batches):
        count = fan_out_pending(limit)
        total += count
        if count < limit:
            break
    return total

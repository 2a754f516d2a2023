"""Fan-out (worker side): match pending events to subscriptions and create their deliveries.

Runs in a django-q2 task, never in the request, so the write path costs the same with 0 or
10,000 subscriptions. Safe to run twice on the same events: PostgreSQL workers skip events
another worker has locked, SQLite serializes writers, and deliveries are unique per event and
subscription.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from django.db import connections, router, transaction
from django.db.models import Q
from django.utils import timezone

from ..catalog import is_operational, thin_types, type_matches
from ..conf import webhooks_settings
from ..metrics import recording as metrics
from ..models import Delivery, Event, Subscription

logger = logging.getLogger("django_webhooks.delivery.fanout")

EVENT_FIELDS = ("id", "event_type", "payload", "owner_id", "schema_errors", "body", "created_at", "fanned_out_at")
SUBSCRIPTION_FIELDS = ("id", "owner_id", "event_types", "filters")
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


class SubscriptionIndex:
    """Enabled subscriptions indexed by owner and type pattern, for matching a batch of events."""

    def __init__(self, rows: Iterable[tuple[int, str | None, list, dict]]) -> None:
        self._by_owner: dict[str | None, dict[str, list[tuple[int, dict]]]] = defaultdict(lambda: defaultdict(list))
        self._matches: dict[tuple[str, str], bool] = {}
        for sub_id, owner_id, event_types, filters in rows:
            for pattern in dict.fromkeys(event_types or ()):
                self._by_owner[owner_id][pattern].append((sub_id, filters or {}))

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


def envelope_data(event: Event, thin: bool) -> Any:
    """The ``data`` member of the body: the payload, or ``{"id", "type", "url"}`` for thin types."""
    if not thin:
        return event.payload
    object_id = event.payload.get("id") if isinstance(event.payload, dict) else None
    url_format = webhooks_settings.THIN_PAYLOAD_URL
    url = url_format.format(type=event.event_type, id=object_id, event_id=event.pk) if url_format else None
    return {"id": object_id, "type": event.event_type, "url": url}


def build_body(event: Event, *, thin: bool | None = None) -> str:
    """The envelope ``{"type", "timestamp", "data"}`` as compact JSON (Standard Webhooks).

    Computed once at fan-out and stored in ``Event.body``; every delivery and retry sends these
    exact bytes. ``thin`` defaults to the event type's catalog setting.
    """
    if event.body:
        return event.body
    if thin is None:
        thin = event.event_type in thin_types([event.event_type])
    timestamp = event.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    envelope = {"type": event.event_type, "timestamp": timestamp, "data": envelope_data(event, thin)}
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False)


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
            event.body = build_body(event, thin=event.event_type in thin)
            deliveries.extend(
                Delivery(event_id=event.pk, subscription_id=sub_id, created_at=now, next_attempt_at=now)
                for sub_id in index.match(event)
            )
    Event.objects.using(using).bulk_update(events, ["body", "fanned_out_at"], batch_size=500)
    if deliveries:
        Delivery.objects.using(using).bulk_create(deliveries, batch_size=1000, ignore_conflicts=True)
    metrics.events_fanned_out(event.event_type for event in events)
    return deliveries


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

"""Event capture: ``send_event()``, the bulk helper and the outbox handoff.

The event types, their schemas and the catalog are :mod:`django_webhooks.catalog`.

An :class:`~django_webhooks.models.Event` row is written in the caller's transaction. Work is handed
to django-q2 in ``transaction.on_commit``, once per transaction however many events it records, so a
rollback sends nothing and a bulk import enqueues one task.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, models, router, transaction
from django.utils import timezone

from .. import tracing
from ..catalog import FIRST_VERSION, event_type_spec, schema_errors
from ..conf import webhooks_settings
from ..exceptions import InvalidIdempotencyKey, InvalidPayload, PayloadTooLarge, UnknownEventType
from ..models import Event
from ..owners import owner_accessor, owner_key
from . import outbox
from .outbox import EventRow
from .payloads import JSON_ENCODER, get_payload_builder, json_problems, sanitized, text_problem

logger = logging.getLogger("django_webhooks.capture.events")


# --- validation --------------------------------------------------------------------------------


def _serialize(event_type: str, data: Any, spec: dict, *, committed: bool = False) -> tuple[str, list[str] | None]:
    """``data`` as JSON text, checked for JSON safety, the size cap and the type's schema.

    Returns the text and the errors that keep the event from being sent. Before the change
    commits (``committed`` False) an unsafe or oversized payload raises; after it, the event is
    recorded with its errors instead (a storable copy of the data), so nothing is lost silently.
    """
    problems = json_problems(data)
    if problems:
        if not committed:
            raise InvalidPayload(
                f"Data of {event_type!r} cannot be sent as JSON: {'; '.join(problems)}", errors=problems
            )
        return _storable(sanitized(data)), [f"payload: {problem}" for problem in problems]
    text = JSON_ENCODER.encode(data)
    limit = webhooks_settings.MAX_PAYLOAD_BYTES
    if limit and len(text) > limit // 4 and len(text.encode()) > limit:
        message = (
            f"Data of {event_type!r} is {len(text.encode())} bytes serialized; "
            f"the limit is {limit} (DJANGO_WEBHOOKS['MAX_PAYLOAD_BYTES'])."
        )
        if not committed:
            raise PayloadTooLarge(message)
        return _storable(None), [f"payload: {message}"]
    errors = schema_errors(spec["schema"], json.loads(text)) if spec["schema"] else []
    if not errors:
        return text, None
    if committed:
        return text, errors
    if webhooks_settings.SCHEMA_VALIDATION == "record":
        logger.warning("Event %s recorded with schema errors; it will not be sent: %s", event_type, "; ".join(errors))
        return text, errors
    raise InvalidPayload(f"Data of {event_type!r} does not match its schema: {'; '.join(errors)}", errors=errors)


def _storable(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def _row(
    event_type: str,
    data: Any,
    owner_id: str | None,
    spec: dict,
    idempotency_key: str | None = None,
    trace_context: str = "",
) -> EventRow:
    text, errors = _serialize(event_type, data, spec)
    return EventRow(event_type, text, owner_id, timezone.now(), idempotency_key, errors, trace_context, spec["version"])


def _checked_idempotency_key(key: Any) -> str | None:
    if key is None:
        return None
    limit = Event._meta.get_field("idempotency_key").max_length
    if not isinstance(key, str) or not key:
        raise InvalidIdempotencyKey(f"An idempotency key is a non-empty string, not {key!r}.")
    if limit is not None and len(key) > limit:
        raise InvalidIdempotencyKey(
            f"Idempotency key {key[:20]!r}... is {len(key)} characters; at most {limit} are stored."
        )
    problem = text_problem(key)
    if problem:
        raise InvalidIdempotencyKey(f"Idempotency key {key!r} {problem}.")
    return key


# --- recording ---------------------------------------------------------------------------------


def _existing(using: str, owner_id: str | None, idempotency_key: str) -> Event | None:
    return Event.objects.using(using).filter(owner_id=owner_id, idempotency_key=idempotency_key).order_by("id").first()


def send_event(event_type: str, data: Any, *, owner: Any = None, idempotency_key: str | None = None) -> Event:
    """Record an event in the current transaction; a worker fans it out after commit.

    ``owner`` is an instance of ``OWNER_MODEL``, its primary key or None (staff subscriptions
    only). With ``idempotency_key`` (a string of at most 200 characters), a second call for the
    same owner and key returns the first event and records nothing. Everything is checked
    before anything is written: raises :class:`UnknownEventType`, :class:`InvalidOwner`,
    :class:`InvalidIdempotencyKey`, :class:`InvalidPayload` (data JSON cannot carry, such as NaN,
    NUL or lone surrogates, or a schema mismatch when ``SCHEMA_VALIDATION`` is ``"raise"``) or
    :class:`PayloadTooLarge`.
    """
    owner_id = owner_key(owner)
    idempotency_key = _checked_idempotency_key(idempotency_key)
    with tracing.publishing(event_type) as publication:
        row = _row(event_type, data, owner_id, event_type_spec(event_type), idempotency_key, publication.context)
        event = _insert_once(row)
        publication.recorded([event.pk])
    return event


def _insert_once(row: EventRow) -> Event:
    """Insert ``row``, unless its owner already recorded an event with its idempotency key: that one."""
    using = router.db_for_write(Event)
    if row.idempotency_key is None:
        return row.to_event(outbox.write(using, [row])[0], using)
    existing = _existing(using, row.owner_id, row.idempotency_key)
    if existing is not None:
        return existing
    try:
        with transaction.atomic(using=using):
            (pk,) = outbox.insert_rows(using, [row])
    except IntegrityError:
        existing = _existing(using, row.owner_id, row.idempotency_key)
        if existing is None:
            raise
        return existing
    outbox.schedule_processing(using)
    return row.to_event(pk, using)


def check_change(event_type: str, data: Any) -> None:
    """Raise what :func:`record_change` would refuse before its change commits (a binding's
    ``pre_save`` check in autocommit): an unknown or archived type, data JSON cannot carry."""
    event_type_spec(event_type)
    problems = json_problems(data)
    if problems:
        raise InvalidPayload(f"Data of {event_type!r} cannot be sent as JSON: {'; '.join(problems)}", errors=problems)


def record_change(
    event_type: str, data: Any, owner_id: str | None, *, committed: bool = False, errors: Iterable[str] = ()
) -> None:
    """Record a binding's event, written before the call returns.

    Inside the change's transaction (``committed`` False) a bad payload raises and the change
    rolls back with it. After an autocommit save (``committed`` True) nothing raises: an event
    that cannot be sent is recorded with its ``errors`` (shown in the admin, never sent).
    """
    using = router.db_for_write(Event)
    errors = list(errors)
    with tracing.publishing(event_type) as publication:
        try:
            spec = event_type_spec(event_type)
        except UnknownEventType as exc:
            if not committed:
                raise
            spec, errors = {"schema": None}, [*errors, f"event type: {exc}"]
        text, data_errors = _serialize(event_type, data, spec, committed=committed)
        errors += data_errors or []
        if errors:
            logger.error("Event %s recorded with errors; it will not be sent: %s", event_type, "; ".join(errors))
        version = spec.get("version", FIRST_VERSION)
        row = EventRow(event_type, text, owner_id, timezone.now(), None, errors or None, publication.context, version)
        publication.recorded(outbox.write(using, [row]))


def _owner_resolver(owner: Any) -> Callable[[models.Model], str | None]:
    if isinstance(owner, str) or (callable(owner) and not isinstance(owner, models.Model)):
        return owner_accessor(owner)
    key = owner_key(owner)
    return lambda instance: key


def send_events_for_queryset(
    event_type: str, queryset: models.QuerySet | Iterable[models.Model], *, payload: Any = None, owner: Any = None
) -> list[Event]:
    """Record one event per object with multi-row INSERTs (``update()`` and ``bulk_create`` fire no signals).

    ``payload`` is a builder as for bindings (default: every concrete field). ``owner`` is a
    callable ``(instance) -> owner``, a dotted attribute path (``"customer.user"``), or a fixed owner
    instance / None for all events.
    """
    spec = event_type_spec(event_type)
    build = get_payload_builder(payload, context=f"send_events_for_queryset({event_type!r})")
    resolve_owner = _owner_resolver(owner)
    objects = queryset.iterator(chunk_size=2000) if isinstance(queryset, models.QuerySet) else queryset
    using = router.db_for_write(Event)
    with tracing.publishing(event_type) as publication:
        context = publication.context
        rows = [_row(event_type, build(instance), resolve_owner(instance), spec, None, context) for instance in objects]
        pks = outbox.write(using, rows)
        publication.recorded(pks)
    return [row.to_event(pk, using) for row, pk in zip(rows, pks, strict=True)]


async def asend_event(event_type: str, data: Any, *, owner: Any = None, idempotency_key: str | None = None) -> Event:
    """:func:`send_event` for async code (an async view, a consumer).

    Runs it in Django's thread for synchronous code, the way ``Model.asave()`` runs ``save()``: the
    event is written before the call returns, in the transaction that thread has open (with
    ``ATOMIC_REQUESTS`` off, async views have none, so the event commits on its own) and with
    the same errors, raised here.
    """
    return await sync_to_async(send_event)(event_type, data, owner=owner, idempotency_key=idempotency_key)


async def asend_events_for_queryset(
    event_type: str, queryset: models.QuerySet | Iterable[models.Model], *, payload: Any = None, owner: Any = None
) -> list[Event]:
    """:func:`send_events_for_queryset` for async code, run as :func:`asend_event` runs its sync twin."""
    return await sync_to_async(send_events_for_queryset)(event_type, queryset, payload=payload, owner=owner)

"""The outbox: writing event rows next to the change they report, then handing them to a worker.

An event row is inserted by the database before the call that records it returns: inside the
caller's transaction when there is one (it commits or rolls back with the change), otherwise
in its own statement right after. The handoff (:mod:`django_webhooks.delivery.handoff`) follows the
commit, once per transaction. Nothing is held in memory and no thread is started.
"""

from __future__ import annotations

import json
import weakref
from datetime import datetime
from typing import Any, NamedTuple

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from .. import rows as sql_rows
from ..delivery import handoff
from ..models import Event

#: Rows in one INSERT statement.
INSERT_BATCH_SIZE = sql_rows.INSERT_BATCH_SIZE


class EventRow(NamedTuple):
    """An event ready to insert: validated, its data serialized to JSON text once."""

    event_type: str
    payload: str
    owner_id: str | None
    created_at: datetime
    idempotency_key: str | None = None
    schema_errors: list[str] | None = None
    #: W3C trace context of the span that recorded it (:mod:`django_webhooks.tracing`), or "".
    trace_context: str = ""
    #: The version of its event type the data is in (the current one, from the catalog).
    version: int = 1

    def to_event(self, pk: int | None, using: str) -> Event:
        event = Event(
            id=pk,
            event_type=self.event_type,
            payload=json.loads(self.payload),
            owner_id=self.owner_id,
            idempotency_key=self.idempotency_key,
            schema_errors=self.schema_errors,
            trace_context=self.trace_context,
            version=self.version,
            created_at=self.created_at,
        )
        event._state.adding = False
        event._state.db = using
        return event


_COLUMNS = (
    "event_type",
    "payload",
    "owner_id",
    "idempotency_key",
    "schema_errors",
    "created_at",
    "trace_context",
    "version",
    "body",
)


def insert_rows(using: str, rows: list[EventRow]) -> list[int | None]:
    """INSERT ``rows`` in as few statements as possible; their primary keys, in order.

    The ids are None on a backend that cannot return them from a multi-row insert. Nothing is
    handed to a worker: see :func:`write`. The body stays empty until fan-out fixes it.
    """
    adapt_datetime = connections[using].ops.adapt_datetimefield_value
    values = [
        (
            row.event_type,
            row.payload,
            row.owner_id,
            row.idempotency_key,
            json.dumps(row.schema_errors) if row.schema_errors else None,
            adapt_datetime(row.created_at),
            row.trace_context,
            row.version,
            "",
        )
        for row in rows
    ]
    return sql_rows.insert_rows(Event, _COLUMNS, values, using, INSERT_BATCH_SIZE)


#: connection -> its ``run_on_commit`` list when :func:`schedule_processing` registered a handoff in it.
_scheduled_in: weakref.WeakKeyDictionary[BaseDatabaseWrapper, list[Any]] = weakref.WeakKeyDictionary()


def schedule_processing(using: str) -> None:
    """Hand the events over when the current transaction on ``using`` commits.

    Calls within one transaction share one handoff. Django replaces ``connection.run_on_commit``
    with a new list on every commit, rollback and savepoint rollback, so the list we registered
    in tells whether our callback is still waiting. Outside an atomic block the change is
    already committed and the handoff happens at once.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        handoff.request_processing()
    elif _scheduled_in.get(connection) is not connection.run_on_commit:
        connection.on_commit(handoff.request_processing)
        _scheduled_in[connection] = connection.run_on_commit


def write(using: str, rows: list[EventRow]) -> list[int | None]:
    """Insert ``rows`` now, in the current transaction if there is one, and schedule processing."""
    pks = insert_rows(using, rows)
    if rows:
        schedule_processing(using)
    return pks

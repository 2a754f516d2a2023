"""The outbox: writing event rows next to the change they report, then handing them to the queue.

Inside a transaction an event row is inserted at once, so it commits or rolls back with the
change, and one processing task is requested in ``transaction.on_commit`` per transaction.

Outside one (autocommit), ``post_save`` runs after the change has committed, so a binding can
only record its event afterwards. With ``AUTOCOMMIT_EVENTS = "background"`` the request thread
hands the validated row to this process's writer thread, which inserts the rows of all requests
of the last few milliseconds in one statement, then pushes one processing task: the request
pays neither a second round trip nor a second commit. The row lives in memory meanwhile; see
``docs/capture.md`` for the guarantee and for the strict alternative (``atomic()``).
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import os
import threading
import time
from collections import deque
from datetime import datetime
from typing import NamedTuple

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction

from . import queue
from .background import BackgroundLoop, off_request_thread
from .conf import webhooks_settings
from .models import Event

logger = logging.getLogger("django_webhooks.outbox")

#: Rows in one INSERT statement.
INSERT_BATCH_SIZE = 500
#: Rows, and bytes of serialized data, the writer thread may hold (while the database is away);
#: beyond either, bindings write inline again.
MAX_PENDING_ROWS = 10_000
MAX_PENDING_BYTES = 32 * 1024 * 1024
#: How long the writer waits for more rows before inserting what it holds (seconds).
WRITE_COALESCE_SECONDS = 0.005
#: Longest pause between attempts while the database refuses the writer's rows (seconds).
MAX_RETRY_DELAY = 5.0


class EventRow(NamedTuple):
    """An event ready to insert: validated, its data serialized to JSON text once."""

    event_type: str
    payload: str
    owner_id: str | None
    created_at: datetime
    idempotency_key: str | None = None
    schema_errors: list[str] | None = None

    def to_event(self, pk: int | None, using: str) -> Event:
        event = Event(
            id=pk,
            event_type=self.event_type,
            payload=json.loads(self.payload),
            owner_id=self.owner_id,
            idempotency_key=self.idempotency_key,
            schema_errors=self.schema_errors,
            created_at=self.created_at,
        )
        event._state.adding = False
        event._state.db = using
        return event


# --- inserting ---------------------------------------------------------------------------------

_COLUMNS = ("event_type", "payload", "owner_id", "idempotency_key", "schema_errors", "created_at", "body")
_single_row_statements: dict[str, str] = {}


def _returns_ids(using: str, count: int) -> bool:
    features = connections[using].features
    return features.can_return_columns_from_insert and (count == 1 or features.can_return_rows_from_bulk_insert)


def _build_statement(using: str, count: int) -> str:
    quote = connections[using].ops.quote_name
    columns = ", ".join(quote(Event._meta.get_field(name).column) for name in _COLUMNS)
    row = "(%s, %s, %s, %s, %s, %s, '')"  # body stays empty until fan-out fixes it
    returning = f" RETURNING {quote(Event._meta.pk.column)}" if _returns_ids(using, count) else ""
    return f"INSERT INTO {quote(Event._meta.db_table)} ({columns}) VALUES {', '.join([row] * count)}{returning}"  # noqa: S608 (quoted model names only)


def _statement(using: str, count: int) -> str:
    """The single-row INSERT is built once per database: composing it costs as much as its round trip."""
    if count != 1:
        return _build_statement(using, count)
    if using not in _single_row_statements:
        _single_row_statements[using] = _build_statement(using, 1)
    return _single_row_statements[using]


def insert_rows(using: str, rows: list[EventRow]) -> list[int | None]:
    """INSERT ``rows`` in as few statements as possible; their primary keys, in order.

    The ids are None on a backend that cannot return them from a multi-row insert. Nothing is
    handed to the queue: see :func:`write`.
    """
    connection = connections[using]
    adapt_datetime = connection.ops.adapt_datetimefield_value
    pks: list[int | None] = []
    for start in range(0, len(rows), INSERT_BATCH_SIZE):
        batch = rows[start : start + INSERT_BATCH_SIZE]
        params: list = []
        for row in batch:
            errors = json.dumps(row.schema_errors) if row.schema_errors else None
            params += (
                row.event_type,
                row.payload,
                row.owner_id,
                row.idempotency_key,
                errors,
                adapt_datetime(row.created_at),
            )
        with connection.cursor() as cursor:
            cursor.execute(_statement(using, len(batch)), params)
            if _returns_ids(using, len(batch)):
                pks += [pk for (pk,) in cursor.fetchall()]
            elif len(batch) == 1:
                pks.append(connection.ops.last_insert_id(cursor, Event._meta.db_table, Event._meta.pk.column))
            else:
                pks += [None] * len(batch)
    return pks


def schedule_processing(using: str) -> None:
    """Enqueue one processing task when the current transaction on ``using`` commits.

    Calls within one transaction share one task. Django replaces ``connection.run_on_commit``
    with a new list on every commit, rollback and savepoint rollback, so the list we registered
    in tells whether our callback is still waiting. Outside an atomic block the change is
    already committed and the task is requested at once.
    """
    connection = connections[using]
    if connection.in_atomic_block:
        if getattr(connection, "_webhooks_scheduled_in", None) is connection.run_on_commit:
            return
        transaction.on_commit(queue.request_processing, using=using)
        connection._webhooks_scheduled_in = connection.run_on_commit
    else:
        queue.request_processing()


def write(using: str, rows: list[EventRow]) -> list[int | None]:
    """Insert ``rows`` now, in the current transaction if there is one, and schedule processing."""
    pks = insert_rows(using, rows)
    if rows:
        schedule_processing(using)
    return pks


# --- the writer thread -------------------------------------------------------------------------


def _background_wanted(using: str) -> bool:
    if connections[using].in_atomic_block:
        return False
    mode = webhooks_settings.AUTOCOMMIT_EVENTS
    return mode != "inline" and off_request_thread(using, in_tests=mode == "background")


class _Writer:
    """Inserts autocommit rows from a daemon thread, many requests' rows per statement."""

    def __init__(self) -> None:
        self._forget_pending()
        self._exit_hook_pid: int | None = None
        self._loop = BackgroundLoop(
            "django-webhooks-outbox",
            self._write_pending,
            coalesce=WRITE_COALESCE_SECONDS,
            on_idle=connections.close_all,
        )
        os.register_at_fork(after_in_child=self._forget_pending)

    def _forget_pending(self) -> None:
        self._rows: deque[tuple[str, EventRow]] = deque()
        self._lock = threading.Lock()
        self._held_bytes = 0  # data of rows submitted and not yet written or dropped

    def submit(self, using: str, row: EventRow) -> bool:
        size = len(row.payload)
        with self._lock:
            if len(self._rows) >= MAX_PENDING_ROWS or self._held_bytes + size > MAX_PENDING_BYTES:
                return False
            self._held_bytes += size
        if self._exit_hook_pid != os.getpid():
            # A multiprocessing child (a django-q2 worker) ends with os._exit(): atexit handlers
            # do not run there, multiprocessing's finalizers do. Registered per process.
            self._exit_hook_pid = os.getpid()
            multiprocessing.util.Finalize(None, _write_pending_rows, exitpriority=10)
        self._rows.append((using, row))
        self._loop.wake()
        return True

    def _write_pending(self) -> None:
        """Insert the rows submitted so far; rows that arrive meanwhile wait for the next run."""
        by_database: dict[str, list[EventRow]] = {}
        for _ in range(len(self._rows)):
            using, row = self._rows.popleft()
            by_database.setdefault(using, []).append(row)
        written = 0
        for using, rows in by_database.items():
            written += self._insert(using, rows)
            with self._lock:
                self._held_bytes -= sum(len(row.payload) for row in rows)
        if written:
            queue.enqueue_processing()  # already off the request thread: push now

    def _insert(self, using: str, rows: list[EventRow]) -> int:
        """Insert ``rows``, waiting out an unreachable database; drop (and log) a row it rejects."""
        delay = 0.05
        while True:
            try:
                insert_rows(using, rows)
                return len(rows)
            except (OperationalError, InterfaceError) as exc:
                logger.warning("Could not write %d event(s), retrying in %.2f s: %s", len(rows), delay, exc)
                connections[using].close()
                time.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_DELAY)
            except DatabaseError:
                if len(rows) > 1:
                    return sum(self._insert(using, [row]) for row in rows)
                logger.exception(
                    "The database rejected event %s for owner %s; it is not recorded.",
                    rows[0].event_type,
                    rows[0].owner_id,
                )
                return 0

    def pending(self) -> int:
        return len(self._rows)

    def flush(self, timeout: float) -> bool:
        return self._loop.flush(timeout)


_writer = _Writer()


def write_soon(using: str, row: EventRow) -> None:
    """Record a binding's event: inline inside a transaction, by the writer thread outside one.

    Writes inline when ``AUTOCOMMIT_EVENTS`` is ``"inline"``, under Django's test runner (unless
    the setting says ``"background"``), and when the writer already holds ``MAX_PENDING_ROWS``
    rows or ``MAX_PENDING_BYTES`` of data.
    """
    if not (_background_wanted(using) and _writer.submit(using, row)):
        write(using, [row])


def flush(timeout: float = 5.0) -> bool:
    """Wait until the writer thread has inserted every row handed to it; True if it has.

    For tests that run in autocommit with ``AUTOCOMMIT_EVENTS = "background"``, and for
    shutdown hooks.
    """
    return _writer.flush(timeout)


@atexit.register
def _write_pending_rows() -> None:
    if not _writer.flush(timeout=5.0):
        logger.error("Exiting with %d event(s) not yet written to the outbox.", _writer.pending())

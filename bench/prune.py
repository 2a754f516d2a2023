"""Retention benchmark: prune throughput against attempt insert throughput, at 10 million attempts.

Runs on PostgreSQL when DATABASE_URL is set, otherwise on SQLite (SQLITE_PATH)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/prune.py
    SQLITE_PATH=/tmp/dwh-bench-prune.sqlite3 .venv/bin/python bench/prune.py  # 1,000,000 by default

Creates a fresh database (``--db-name`` on PostgreSQL, SQLITE_PATH on SQLite), migrates it and
seeds it with set-based ``INSERT ... SELECT`` statements over a generated series: ``--attempts``
DeliveryAttempt rows (10,000,000 on PostgreSQL, 1,000,000 on SQLite) spread evenly over ``--days``
days (40), for deliveries of ``--fan-out`` subscriptions per event (2) among ``--subscriptions``
(200), ``--attempts-per-delivery`` (1.25: a quarter of the deliveries retried once, 5 minutes
later), rows shaped like the ones the workers write (stored headers, a small response). Each
table's secondary indexes (the migrated ones, as the database defines them) are dropped for the
load and built after it; then ``VACUUM ANALYZE`` (``ANALYZE`` on SQLite), the state autovacuum
keeps a live table in.

Then it measures:

1. **insert**: attempts written the way ``outcomes.record`` writes them, ``bulk_create`` of
   ``--insert-batch`` rows (50, the default ``CLAIM_BATCH_SIZE``) built like the engine's, in
   autocommit; and the same rows through one multi-row ``INSERT`` per batch whose SQL is built
   once (what a precompiled statement would cost). Both into the seeded table, with all its
   indexes.
2. **prune**: ``manage.py webhooks_prune --days <keep>`` with ``keep`` = ``--days`` x 3/4 (about
   the oldest quarter of everything goes), printing the command's own output (every
   ``--progress-every``-th batch line and the last of each pass), timed per pass. Meanwhile an
   inserter process writes ``--concurrent-rate`` attempts a second (0: none) in batches of
   ``--insert-batch``; its batch latencies are compared with the same inserter's alone just
   before. On PostgreSQL, the plan (``EXPLAIN``) of each statement shape the prune runs is taken
   just before its first execution, and the WAL written meanwhile is reported (the server's:
   other databases' activity counts too).

Prints rows/s of both and the ratio prune / insert, then drops the database (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import re
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
os.environ.setdefault("WEBHOOKS_LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG records every query; production does not

RETRY_DELAY_US = 300 * 1_000_000


def setup_django(db_name: str) -> None:
    import django

    django.setup()
    from django.db import connection

    default_sqlite = os.path.join(os.environ.get("TMPDIR", "/tmp"), "dwh-bench-prune.sqlite3")
    sqlite_path = os.environ.get("SQLITE_PATH", default_sqlite)
    connection.settings_dict["TEST"]["NAME"] = sqlite_path if connection.vendor == "sqlite" else db_name


# --- seeding --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """How many rows of each kind, and the time they span."""

    attempts: int
    deliveries: int
    events: int
    subscriptions: int
    fan_out: int
    start_us: int
    span_us: int

    @property
    def event_step_us(self) -> int:
        return max(1, self.span_us // self.events)


class Dialect:
    """The few SQL spellings the seed statements need on each backend."""

    def __init__(self, vendor: str) -> None:
        self.pg = vendor == "postgresql"

    def series(self, lo: int, hi: int) -> tuple[str, str]:
        """(prefix, FROM item) of a series ``g`` from ``lo`` to ``hi``."""
        if self.pg:
            return "", f"generate_series({lo}::bigint, {hi}::bigint) AS s(g)"
        return f"WITH RECURSIVE s(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM s WHERE g < {hi}) ", "s"

    def ts(self, us: str) -> str:
        """A timestamp ``us`` microseconds after the epoch, as the backend stores it."""
        if self.pg:
            return f"(TIMESTAMPTZ 'epoch' + ({us}) * INTERVAL '1 microsecond')"
        return f"(strftime('%Y-%m-%d %H:%M:%S', ({us}) / 1000000, 'unixepoch') || printf('.%06d', ({us}) % 1000000))"

    def json(self, text: str) -> str:
        return f"CAST({text} AS jsonb)" if self.pg else text

    def padded(self, number: str, width: int) -> str:
        return f"lpad(CAST({number} AS text), {width}, '0')" if self.pg else f"printf('%0{width}d', {number})"


def insert_select(model, columns: dict[str, str], inner: str, lo: int, hi: int, dialect: Dialect) -> str:
    """``INSERT INTO <model> (...) SELECT <columns> FROM (<inner over the series lo..hi>)``.

    Every NOT NULL column without a database default must be in ``columns``, so that a field added
    to the model fails here instead of seeding rows the ORM would not write.
    """
    from django.db import connection
    from django.db.models.fields import NOT_PROVIDED

    quote = connection.ops.quote_name
    for model_field in model._meta.concrete_fields:
        needed = not model_field.null and model_field.db_default is NOT_PROVIDED
        if model_field.column not in columns and needed:
            raise SystemExit(f"bench/prune.py: no seed value for {model._meta.db_table}.{model_field.column}")
    prefix, series = dialect.series(lo, hi)
    names = ", ".join(quote(name) for name in columns)
    values = ", ".join(columns.values())
    return f"{prefix}INSERT INTO {quote(model._meta.db_table)} ({names}) SELECT {values} FROM ({inner.format(series=series)}) AS x"


def event_columns(shape: Shape, d: Dialect) -> tuple[dict[str, str], str]:
    created = f"{shape.start_us} + (g - 1) * {shape.event_step_us}"
    body = (
        '\'{"type": "order.created", "timestamp": "\' || g || \'", "data": {"number": "A-\' || g || '
        '\'", "total": "25.00", "currency": "EUR", "customer": {"id": \' || (g % 5000) || \'}}}\''
    )
    columns = {
        "id": "g",
        "event_type": "'order.created'",
        "payload": d.json('\'{"number": "A-1", "total": "25.00"}\''),
        "owner_id": "'tenant-' || (g % 50)",
        "body": body,
        "fanned_out_at": d.ts(f"{created} + 1000000"),
        "created_at": d.ts(created),
    }
    return columns, "SELECT g FROM {series}"


def delivery_columns(shape: Shape, d: Dialect) -> tuple[dict[str, str], str]:
    a, n, f, s = shape.attempts, shape.deliveries, shape.fan_out, shape.subscriptions
    created = f"{shape.start_us} + (e - 1) * {shape.event_step_us}"
    columns = {
        "id": "g",
        "event_id": "e",
        "subscription_id": f"((e - 1) + (g - 1) % {f}) % {s} + 1",
        "message_id": "'msg_' || " + d.padded("g", 24),
        "status": "CASE WHEN g % 200 = 0 THEN 'exhausted' ELSE 'succeeded' END",
        "attempts": "tries",
        "lease_token": "''",
        "last_status_code": "CASE WHEN g % 200 = 0 THEN 500 ELSE 200 END",
        "last_error": "''",
        "created_at": d.ts(created),
        "completed_at": d.ts(f"{created} + (tries - 1) * {RETRY_DELAY_US} + 100000"),
    }
    # Delivery g has the attempts a with (a - 1) * n / a_total = g - 1 (integer division).
    tries = f"(g * {a} + {n} - 1) / {n} - ((g - 1) * {a} + {n} - 1) / {n}"
    return columns, f"SELECT g, (g - 1) / {f} + 1 AS e, {tries} AS tries FROM {{series}}"


def attempt_columns(shape: Shape, d: Dialect) -> tuple[dict[str, str], str]:
    a, n, f, s = shape.attempts, shape.deliveries, shape.fan_out, shape.subscriptions
    # Each of an event's deliveries is sent a millisecond after the previous one.
    sent = (
        f"{shape.start_us} + (e - 1) * {shape.event_step_us} + (num - 1) * {RETRY_DELAY_US} "
        f"+ 50000 + (dlv - 1) % {f} * 1000"
    )
    last = "num = tries AND dlv % 200 <> 0"
    # One value for every row, of the size the workers store (parsing a JSON text per row would
    # double the seed time).
    headers = (
        '\'{"Content-Type": "application/json", "User-Agent": "django-webhooks/1.0", '
        '"webhook-id": "msg_000000000000000000000001", "webhook-timestamp": "1700000000", '
        '"webhook-signature": "v1,<redacted>", '
        '"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}\''
    )
    columns = {
        "id": "g",
        "delivery_id": "dlv",
        "subscription_id": f"((e - 1) + (dlv - 1) % {f}) % {s} + 1",
        "attempt_number": "num",
        "created_at": d.ts(sent),
        "url": f"'https://hooks.example.com/webhooks/' || ((e - 1) + (dlv - 1) % {f}) % {s} + 1",
        "request_headers": d.json(headers),
        "response_status": f"CASE WHEN {last} THEN 200 ELSE 500 END",
        "response_headers": d.json('\'{"Content-Type": "application/json", "Content-Length": "11"}\''),
        "response_body": f"CASE WHEN {last} THEN '{{\"ok\": true}}' ELSE 'upstream error' END",
        "duration_ms": "20 + g % 180",
        "error_class": f"CASE WHEN {last} THEN '' ELSE 'http_5xx' END",
        "error_message": "''",
        "succeeded": f"({last})",
    }
    first = f"((dlv - 1) * {a} + {n} - 1) / {n} + 1"
    tries = f"(dlv * {a} + {n} - 1) / {n} - ((dlv - 1) * {a} + {n} - 1) / {n}"
    inner = (
        f"SELECT g, dlv, (dlv - 1) / {f} + 1 AS e, g - ({first}) + 1 AS num, {tries} AS tries "
        f"FROM (SELECT g, (g - 1) * {n} / {a} + 1 AS dlv FROM {{series}}) AS y"
    )
    return columns, inner


def secondary_indexes(model) -> list[tuple[str, str]]:
    """(name, CREATE statement) of the table's indexes that back no constraint."""
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = %s::regclass "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                [connection.ops.quote_name(table)],
            )
        else:
            cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s AND sql IS NOT NULL",
                [table],
            )
        return list(cursor.fetchall())


@contextlib.contextmanager
def indexes_built_after(model) -> Iterator[None]:
    """Drop the table's secondary indexes for a bulk load and build them again after it.

    Building an index once is several times faster than maintaining it row by row; the indexes
    built are the migrated ones, from the database's own definitions.
    """
    from django.db import connection

    indexes = secondary_indexes(model)
    with connection.cursor() as cursor:
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    try:
        yield
    finally:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SET maintenance_work_mem = '256MB'")
            for _, create in indexes:
                cursor.execute(create)
        print(
            f"  built {len(indexes)} secondary index(es) of {model._meta.db_table} in "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )


def seed(shape: Shape, chunk: int) -> dict[str, float]:
    """Seed events, deliveries and attempts; seconds per step."""
    from django.db import connection

    from django_webhooks.models import Delivery, DeliveryAttempt, Event, Subscription

    dialect = Dialect(connection.vendor)
    Subscription.objects.bulk_create(
        Subscription(url=f"https://hooks.example.com/webhooks/{i}", event_types=["*"], owner_id=f"tenant-{i % 50}")
        for i in range(1, shape.subscriptions + 1)
    )
    ids = list(Subscription.objects.order_by("pk").values_list("pk", flat=True))
    assert ids == list(range(1, shape.subscriptions + 1)), "a fresh database numbers subscriptions from 1"
    seconds = {}
    for model, rows, build in (
        (Event, shape.events, event_columns),
        (Delivery, shape.deliveries, delivery_columns),
        (DeliveryAttempt, shape.attempts, attempt_columns),
    ):
        columns, inner = build(shape, dialect)
        started = time.perf_counter()
        with indexes_built_after(model):
            for lo in range(1, rows + 1, chunk):
                hi = min(rows, lo + chunk - 1)
                with connection.cursor() as cursor:
                    cursor.execute(insert_select(model, columns, inner, lo, hi, dialect))
                print(
                    f"  seeded {hi:>11,} / {rows:,} {model._meta.verbose_name_plural} "
                    f"({hi / (time.perf_counter() - started):,.0f} rows/s)",
                    flush=True,
                )
        seconds[model._meta.model_name] = time.perf_counter() - started
        if dialect.pg:
            with connection.cursor() as cursor:
                table = connection.ops.quote_name(model._meta.db_table)
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {rows})")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        if dialect.pg:
            for model in (Event, Delivery, DeliveryAttempt):
                cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        else:
            cursor.execute("ANALYZE")
    seconds["vacuum"] = time.perf_counter() - started
    return seconds


# --- inserting ----------------------------------------------------------------------------


def engine_attempts(targets: list[tuple[int, int]], count: int, offset: int = 0) -> list:
    """``count`` attempts shaped like ``outcomes.record``'s, for the ``(delivery, subscription)`` targets."""
    from django.utils import timezone

    from django_webhooks.delivery.headers import redact_headers
    from django_webhooks.models import DeliveryAttempt

    now = timezone.now()
    rows = []
    for index in range(offset, offset + count):
        delivery_id, subscription_id = targets[index % len(targets)]
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "django-webhooks/1.0",
            "webhook-id": f"msg_{delivery_id:024d}",
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        }
        rows.append(
            DeliveryAttempt(
                delivery_id=delivery_id,
                subscription_id=subscription_id,
                attempt_number=2,
                created_at=now,
                url=f"https://hooks.example.com/webhooks/{subscription_id}",
                request_headers=redact_headers(headers),
                response_status=200,
                response_headers={"Content-Type": "application/json", "Content-Length": "11"},
                response_body='{"ok": true}',
                duration_ms=35,
                error_class="",
                error_message="",
                succeeded=True,
            )
        )
    return rows


class MultiRowInsert:
    """One ``INSERT ... VALUES (...), (...)`` of ``size`` attempts, its SQL built once."""

    def __init__(self, size: int) -> None:
        from django.db import connection

        from django_webhooks.models import DeliveryAttempt

        self.fields = [f for f in DeliveryAttempt._meta.concrete_fields if not f.primary_key]
        quote = connection.ops.quote_name
        row = "(" + ", ".join(["%s"] * len(self.fields)) + ")"
        self.sql = (
            f"INSERT INTO {quote(DeliveryAttempt._meta.db_table)} ({', '.join(quote(f.column) for f in self.fields)}) "
            f"VALUES {', '.join([row] * size)}"
        )

    def __call__(self, attempts: list) -> None:
        from django.db import connection

        params = [f.get_db_prep_save(getattr(a, f.attname), connection) for a in attempts for f in self.fields]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, params)


def recent_targets(limit: int = 1000) -> list[tuple[int, int]]:
    from django_webhooks.models import Delivery

    return list(Delivery.objects.order_by("-pk").values_list("pk", "subscription_id")[:limit])


def measure_inserts(rows: int, batch: int) -> dict[str, float]:
    """Rows/s of bulk_create and of the precompiled multi-row INSERT, ``batch`` rows a statement."""
    from django_webhooks.models import DeliveryAttempt

    targets = recent_targets()
    multi_row = MultiRowInsert(batch)
    rates = {}
    for label, write in (
        ("bulk_create", lambda attempts: DeliveryAttempt.objects.bulk_create(attempts)),
        ("multi-row INSERT", multi_row),
    ):
        write(engine_attempts(targets, batch))  # warm-up
        started = time.perf_counter()
        for offset in range(0, rows, batch):
            write(engine_attempts(targets, batch, offset))
        rates[label] = rows / (time.perf_counter() - started)
    return rates


def insert_loop(database: str, rate: float, batch: int, stop, ready, results) -> None:
    """In a child process: ``rate`` attempts a second in ``batch``-row bulk_creates, each timed."""
    import django
    from django.db import connection

    django.setup()
    connection.settings_dict["NAME"] = database
    from django_webhooks.models import DeliveryAttempt

    latencies: list[float] = []
    rows = 0
    started = time.perf_counter()
    try:
        targets = recent_targets()
        started = time.perf_counter()
        ready.set()
        while not stop.is_set():
            attempts = engine_attempts(targets, batch, rows)
            begun = time.perf_counter()
            DeliveryAttempt.objects.bulk_create(attempts)
            latencies.append(time.perf_counter() - begun)
            rows += batch
            pause = started + rows / rate - time.perf_counter()
            if pause > 0:
                stop.wait(pause)
    finally:
        results.put((rows, time.perf_counter() - started, latencies))
        ready.set()
        connection.close()


@dataclass
class Inserter:
    """A separate process (as a worker is) writing attempts at ``rate`` a second while it runs."""

    rate: float
    batch: int
    latencies: list[float] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0

    def __enter__(self) -> Inserter:
        from django.db import connection

        context = multiprocessing.get_context("spawn")
        self.stop, ready, self.results = context.Event(), context.Event(), context.Queue()
        args = (connection.settings_dict["NAME"], self.rate, self.batch, self.stop, ready, self.results)
        self.process = context.Process(target=insert_loop, args=args, name="bench-inserter")
        self.process.start()
        if not ready.wait(120) or not self.process.is_alive():
            self.process.kill()
            raise SystemExit("bench/prune.py: the inserter process did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.rows, self.seconds, self.latencies = self.results.get()
        self.process.join()

    def summary(self) -> str:
        if not self.latencies:
            return "no batch written"
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return (
            f"{self.rows / self.seconds:,.0f} rows/s achieved of {self.rate:,.0f} asked; batch of {self.batch}: "
            f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {ordered[-1] * 1000:.1f} ms"
        )


def inserter_alone(rate: float, batch: int, seconds: float) -> Inserter:
    with Inserter(rate, batch) as inserter:
        time.sleep(seconds)
    return inserter


# --- pruning ------------------------------------------------------------------------------

PROGRESS = re.compile(r"^\s+(?:deleted|would delete) (\d+) (\w+) \((\d+) so far\)")


class CommandOutput(io.TextIOBase):
    """The command's stdout, passed through (the first, every ``every``-th and the last batch line of
    each pass), with the time each pass ended and the rows it reported."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.started = time.perf_counter()
        self.pass_ends: dict[str, float] = {}
        self.batches: dict[str, int] = {}
        self.so_far: dict[str, int] = {}
        self.kind = ""
        self.held = ""

    def write(self, text: str) -> int:
        for line in text.splitlines():
            match = PROGRESS.match(line)
            if match is None:
                self.flush_held()
                print(line, flush=True)
                continue
            kind = match.group(2)
            if kind != self.kind:
                self.flush_held()
                self.kind = kind
            self.batches[kind] = self.batches.get(kind, 0) + 1
            self.so_far[kind] = int(match.group(3))
            self.pass_ends[kind] = time.perf_counter()
            self.held = f"[{self.pass_ends[kind] - self.started:7.1f} s] {line}"
            if self.batches[kind] == 1 or self.batches[kind] % self.every == 0:
                self.flush_held()
        return len(text)

    def flush_held(self) -> None:
        if self.held:
            print(self.held, flush=True)
            self.held = ""

    def isatty(self) -> bool:
        return False


class Explainer:
    """An execute wrapper taking the plan of each statement shape before it first runs (PostgreSQL)."""

    def __init__(self, tables: tuple[str, ...], limit: int = 16) -> None:
        self.tables = tables
        self.limit = limit
        self.plans: dict[str, str] = {}

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        shape = re.sub(r"\s+", " ", sql)
        verb = shape.split(" ", 1)[0].upper()
        if (
            connection.vendor == "postgresql"
            and verb in {"SELECT", "DELETE"}
            and any(table in sql for table in self.tables)
            and shape not in self.plans
            and len(self.plans) < self.limit
        ):
            with connection.connection.cursor() as raw:
                raw.execute("EXPLAIN " + sql, params)
                self.plans[shape] = "\n".join(row[0] for row in raw.fetchall())
        return execute(sql, params, many, context)


def table_sizes() -> dict[str, int]:
    from django.db import connection

    from django_webhooks.models import Delivery, DeliveryAttempt, Event

    sizes = {}
    with connection.cursor() as cursor:
        for model in (Event, Delivery, DeliveryAttempt):
            cursor.execute("SELECT pg_total_relation_size(%s)", [model._meta.db_table])
            sizes[model._meta.db_table] = cursor.fetchone()[0]
    return sizes


def wal_lsn() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        return int(cursor.fetchone()[0])


def run_prune(keep_days: int, batch_size: int | None, every: int, rate: float, insert_batch: int) -> dict:
    from django.core.management import call_command
    from django.db import connection

    from django_webhooks.models import Delivery, DeliveryAttempt, Event

    pg = connection.vendor == "postgresql"
    explainer = Explainer(tuple(m._meta.db_table for m in (Event, Delivery, DeliveryAttempt)))
    output = CommandOutput(every)
    inserter = Inserter(rate, insert_batch) if rate else None
    wal_before = wal_lsn() if pg else 0
    options = {"days": keep_days, "stdout": output}
    if batch_size:
        options["batch_size"] = batch_size
    with inserter or contextlib.nullcontext(), connection.execute_wrapper(explainer):
        output.started = time.perf_counter()
        call_command("webhooks_prune", **options)
        output.flush_held()
        seconds = time.perf_counter() - output.started
    return {
        "seconds": seconds,
        "pass_ends": output.pass_ends,
        "plans": explainer.plans,
        "wal": wal_lsn() - wal_before if pg else None,
        "inserter": inserter,
        "started": output.started,
        "so_far": output.so_far,
    }


# --- the run ------------------------------------------------------------------------------


def counts() -> dict[str, int]:
    from django_webhooks.models import Delivery, DeliveryAttempt, Event

    return {
        "events": Event.objects.count(),
        "deliveries": Delivery.objects.count(),
        "attempts": DeliveryAttempt.objects.count(),
    }


def run(args: argparse.Namespace) -> None:
    from django.db import connection
    from django.utils import timezone

    from django_webhooks.conf import webhooks_settings

    pg = connection.vendor == "postgresql"
    attempts = args.attempts or (10_000_000 if pg else 1_000_000)
    deliveries = max(1, round(attempts / args.attempts_per_delivery))
    fan_out = min(args.fan_out, args.subscriptions)
    events = max(1, deliveries // fan_out)
    deliveries = events * fan_out
    now = timezone.now()
    start = now - timedelta(days=args.days)
    shape = Shape(
        attempts=attempts,
        deliveries=deliveries,
        events=events,
        subscriptions=args.subscriptions,
        fan_out=fan_out,
        start_us=int((start - datetime(1970, 1, 1, tzinfo=start.tzinfo)).total_seconds()) * 1_000_000,
        span_us=args.days * 86_400 * 1_000_000,
    )
    keep = args.keep_days if args.keep_days is not None else args.days * 3 // 4
    batch_size = args.batch_size or webhooks_settings.PRUNE_BATCH_SIZE
    print(
        f"backend={connection.vendor} attempts={attempts:,} deliveries={deliveries:,} events={events:,} "
        f"subscriptions={args.subscriptions} over {args.days} days; prune keeps {keep} days, "
        f"PRUNE_BATCH_SIZE={batch_size}; cores={os.cpu_count()} (a shared machine)",
        flush=True,
    )

    print("seed:", flush=True)
    started = time.perf_counter()
    seeded = seed(shape, args.chunk)
    seed_seconds = time.perf_counter() - started
    print(
        f"seeded in {seed_seconds:.1f} s ("
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in seeded.items())
        + f"; {'VACUUM ANALYZE' if pg else 'ANALYZE'} included)",
        flush=True,
    )
    if pg:
        print("sizes: " + ", ".join(f"{t} {b / 2**30:.2f} GiB" for t, b in table_sizes().items()), flush=True)

    print(f"insert ({args.insert_rows:,} rows in batches of {args.insert_batch}, into the seeded table):", flush=True)
    rates = measure_inserts(args.insert_rows, args.insert_batch)
    for label, rate in rates.items():
        print(f"  {label:17} {rate:10,.0f} attempts/s", flush=True)

    alone = None
    if args.concurrent_rate:
        alone = inserter_alone(args.concurrent_rate, args.insert_batch, args.baseline_seconds)
        print(f"inserter alone ({args.baseline_seconds:.0f} s): {alone.summary()}", flush=True)

    before = counts()
    print(f"prune (webhooks_prune --days {keep} --batch-size {batch_size}):", flush=True)
    pruned = run_prune(keep, batch_size, args.progress_every, args.concurrent_rate, args.insert_batch)
    after = counts()
    extra = pruned["inserter"].rows if pruned["inserter"] else 0
    gone = {kind: before[kind] - after[kind] + (extra if kind == "attempts" else 0) for kind in before}
    ends = pruned["pass_ends"]
    attempt_seconds = ends.get("attempts", pruned["started"]) - pruned["started"]
    events_seconds = ends.get("events", pruned["started"]) - ends.get("attempts", pruned["started"])
    total_rows = sum(gone.values())

    print("results:", flush=True)
    if pg:
        for shape_sql, plan in pruned["plans"].items():
            print(f"  plan of: {shape_sql[:160]}{'...' if len(shape_sql) > 160 else ''}")
            print("    " + plan.replace("\n", "\n    "))
    print(f"  seed: {seed_seconds:.1f} s for {attempts + deliveries + events:,} rows", flush=True)
    print(
        f"  deleted {gone['attempts']:,} attempts, {gone['deliveries']:,} deliveries, {gone['events']:,} events "
        f"in {pruned['seconds']:.1f} s",
        flush=True,
    )
    attempt_rate = pruned["so_far"].get("attempts", 0) / max(attempt_seconds, 1e-9)
    print(f"  prune, attempts pass:  {attempt_rate:10,.0f} attempts/s ({attempt_seconds:.1f} s)", flush=True)
    print(
        f"  prune, events pass:    {(gone['events'] + gone['deliveries']) / max(events_seconds, 1e-9):10,.0f} "
        f"events+deliveries/s ({events_seconds:.1f} s)",
        flush=True,
    )
    print(f"  prune, all rows:       {total_rows / pruned['seconds']:10,.0f} rows/s", flush=True)
    if pruned["wal"] is not None:
        print(
            f"  WAL written during the prune: {pruned['wal'] / 2**20:,.0f} MiB ({pruned['wal'] / total_rows:.0f} B/row; "
            "the server's, other databases' activity included)"
        )
    for label, rate in rates.items():
        print(f"  ratio attempts pruned/s : attempts inserted/s ({label}) = {attempt_rate / rate:.2f}", flush=True)
    if pruned["inserter"]:
        print(f"  inserter during prune: {pruned['inserter'].summary()}", flush=True)
        if alone:
            print(f"  inserter alone:        {alone.summary()}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=0, help="default 10,000,000 (PostgreSQL), 1,000,000 (SQLite)")
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--keep-days", type=int, default=None, help="default: 3/4 of --days")
    parser.add_argument("--attempts-per-delivery", type=float, default=1.25)
    parser.add_argument("--fan-out", type=int, default=2)
    parser.add_argument("--subscriptions", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows per seed statement")
    parser.add_argument("--batch-size", type=int, default=0, help="prune batch (default: PRUNE_BATCH_SIZE)")
    parser.add_argument("--insert-rows", type=int, default=50_000)
    parser.add_argument("--insert-batch", type=int, default=50)
    parser.add_argument("--concurrent-rate", type=float, default=2000, help="attempts/s inserted during the prune")
    parser.add_argument("--baseline-seconds", type=float, default=5)
    parser.add_argument("--progress-every", type=int, default=250)
    parser.add_argument("--db-name", default="dwh_bench_prune", help="PostgreSQL database to create and drop")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    setup_django(args.db_name)
    from django.db import connection

    old_name = connection.settings_dict["NAME"]
    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        run(args)
    finally:
        if args.keep:
            print(f"kept database {connection.settings_dict['NAME']}")
        else:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

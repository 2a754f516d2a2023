"""Multi-row ``INSERT`` and ``UPDATE`` statements for the hot paths: events (capture, fan-out),
deliveries (fan-out) and attempts (delivery).

The ORM's ``bulk_create`` prepares every value of every field through the field classes, and on
PostgreSQL sends each column as an array (``UNNEST``), which psycopg quotes in Python element
by element; for rows that are written by the thousand per second that costs more than the
statement itself. Here the statement text is built once per table, column list and row count
(from the model's own table and column names, quoted by the backend), and the caller passes
values already in their database form: JSON as text, datetimes through
``connection.ops.adapt_datetimefield_value``.

On PostgreSQL a statement of many rows takes them as one JSON parameter (an array of rows, read
with ``json_array_elements`` and cast to the columns' types): psycopg parses a statement in
Python on every execution once it has more than 50 parameters (it caches only smaller ones),
which for a thousand rows of fifteen columns costs more than everything else around it. The
JSON text is made by the C encoder and read by PostgreSQL's C parser.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any, NamedTuple

from django.db import connections, models
from django.db.models.constants import OnConflict

#: Rows in one INSERT statement.
INSERT_BATCH_SIZE = 500
#: Parameters above which psycopg parses a statement again on every execution (it caches the
#: parsing of statements with at most this many); above it, PostgreSQL gets the rows as JSON.
MAX_CACHED_PARAMETERS = 50


def returns_ids(using: str, count: int) -> bool:
    """Whether an INSERT of ``count`` rows on ``using`` can return their primary keys."""
    features = connections[using].features
    return features.can_return_columns_from_insert and (count == 1 or features.can_return_rows_from_bulk_insert)


def _columns(model: type[models.Model], names: tuple[str, ...]) -> list[models.Field]:
    fields = {field.name: field for field in model._meta.concrete_fields}
    return [fields[name] for name in names]


def _as_json(using: str, count: int, width: int) -> bool:
    """Whether ``count`` rows of ``width`` values go to ``using`` as one JSON parameter."""
    return connections[using].vendor == "postgresql" and count * width > MAX_CACHED_PARAMETERS


def _json_values(fields: list[models.Field], using: str) -> list[str]:
    """The SELECT list reading each row ``v.r`` of a JSON array, cast to the fields' column types."""
    connection = connections[using]
    return [f"(v.r->>{index})::{field.db_type(connection)}" for index, field in enumerate(fields)]


def _json_default(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not a database value for a JSON row")


def _rows_json(rows: Sequence[Sequence[Any]]) -> str:
    return json.dumps(rows, default=_json_default, ensure_ascii=False, separators=(",", ":"))


@functools.lru_cache(maxsize=128)
def insert_statement(
    model: type[models.Model], columns: tuple[str, ...], count: int, using: str, ignore_conflicts: bool = False
) -> str:
    """``INSERT INTO <table> (<columns>) VALUES (...), ... [RETURNING <pk>]`` for ``count`` rows.

    ``columns`` are field names; their values are parameters (``%s``). With ``ignore_conflicts``
    a row that breaks a unique constraint is skipped (and no ids are returned).
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = _columns(model, columns)
    names = ", ".join(quote(field.column) for field in fields)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    start = connection.ops.insert_statement(on_conflict=on_conflict)
    suffix = connection.ops.on_conflict_suffix_sql(fields, on_conflict, None, None) if ignore_conflicts else ""
    returning = (
        f" RETURNING {quote(model._meta.pk.column)}" if returns_ids(using, count) and not ignore_conflicts else ""
    )
    if _as_json(using, count, len(columns)):
        selected = ", ".join(_json_values(fields, using))
        values = f"SELECT {selected} FROM json_array_elements(%s::json) WITH ORDINALITY AS v(r, n) ORDER BY v.n"  # noqa: S608 (quoted model names only)
    else:
        values = "VALUES " + ", ".join([row] * count)
    return f"{start} {quote(model._meta.db_table)} ({names}) {values}{' ' + suffix if suffix else ''}{returning}"


def _params(rows: Sequence[Sequence[Any]], as_json: bool) -> list[Any]:
    """The parameters of a statement for ``rows``: one JSON text, or every value in order."""
    if as_json:
        return [_rows_json(rows)]
    return [value for row in rows for value in row]


class _Insert(NamedTuple):
    """What executing an INSERT of one shape needs, worked out once per shape."""

    statement: str
    as_json: bool
    returns_ids: bool


@functools.lru_cache(maxsize=128)
def _insert_plan(
    model: type[models.Model], columns: tuple[str, ...], count: int, using: str, ignore_conflicts: bool
) -> _Insert:
    return _Insert(
        insert_statement(model, columns, count, using, ignore_conflicts),
        _as_json(using, count, len(columns)),
        returns_ids(using, count) and not ignore_conflicts,
    )


def insert_rows(
    model: type[models.Model],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    using: str,
    batch_size: int = INSERT_BATCH_SIZE,
    *,
    ignore_conflicts: bool = False,
) -> list[int | None]:
    """INSERT ``rows`` (values in ``columns`` order, in database form) in as few statements as
    possible; their primary keys in order, or None where the backend cannot return them (and
    with ``ignore_conflicts``, which skips rows that break a unique constraint)."""
    connection = connections[using]
    pks: list[int | None] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        plan = _insert_plan(model, columns, len(batch), using, ignore_conflicts)
        with connection.cursor() as cursor:
            cursor.execute(plan.statement, _params(batch, plan.as_json))
            if plan.returns_ids:
                pks += [pk for (pk,) in cursor.fetchall()]
            elif len(batch) == 1 and not ignore_conflicts:
                pks.append(connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column))
            else:
                pks += [None] * len(batch)
    return pks


@functools.lru_cache(maxsize=128)
def _instance_adapters(
    model: type[models.Model], columns: tuple[str, ...], using: str
) -> list[tuple[str, Callable[[Any], Any] | None]]:
    """For each of ``columns``: the instance attribute holding it and what turns its value into
    database form (datetimes through the backend, JSON to text), or None where it is stored as is."""
    adapt_datetime = connections[using].ops.adapt_datetimefield_value
    adapters: list[tuple[str, Callable[[Any], Any] | None]] = []
    for field in _columns(model, columns):
        adapter: Callable[[Any], Any] | None = None
        if isinstance(field, models.DateTimeField):
            adapter = adapt_datetime
        elif isinstance(field, models.JSONField):
            adapter = functools.partial(_json_text, encoder=field.encoder)
        adapters.append((field.attname, adapter))
    return adapters


def _json_text(value: Any, encoder: type[json.JSONEncoder] | None) -> str | None:
    return None if value is None else json.dumps(value, cls=encoder)


def insert_instances(
    model: type[models.Model],
    columns: tuple[str, ...],
    instances: Sequence[models.Model],
    using: str,
    batch_size: int = INSERT_BATCH_SIZE,
    *,
    ignore_conflicts: bool = False,
) -> list[int | None]:
    """:func:`insert_rows` for unsaved model instances: ``columns`` read from each one and put in
    database form by field type. The instances get their primary keys where the backend returns
    them and are marked saved on ``using`` (with ``ignore_conflicts``, where some may have been
    skipped, they are left as they were)."""
    adapters = _instance_adapters(model, columns, using)
    values = [
        [
            getattr(instance, attname) if adapt is None else adapt(getattr(instance, attname))
            for attname, adapt in adapters
        ]
        for instance in instances
    ]
    pks = insert_rows(model, columns, values, using, batch_size, ignore_conflicts=ignore_conflicts)
    if not ignore_conflicts:
        for instance, pk in zip(instances, pks, strict=True):
            if pk is not None:
                instance.pk = pk
            instance._state.adding = False
            instance._state.db = using
    return pks


@functools.lru_cache(maxsize=128)
def update_statement(model: type[models.Model], columns: tuple[str, ...], count: int, using: str) -> str:
    """``UPDATE <table> SET <column> = v.<value>, ... FROM (<rows>) v WHERE <pk> = v.<pk value>``.

    The parameters of each row are its primary key, then ``columns`` in order. The values are
    named ``column1``, ``column2``... as SQLite names them; PostgreSQL reads them from one JSON
    parameter (or, for few rows, ``VALUES`` with the same names), cast to the columns' types.
    The statement starts with ``UPDATE``, so drivers report the rows it changed.
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    fields = [model._meta.pk, *_columns(model, columns)]
    names = [f"column{index}" for index in range(1, len(fields) + 1)]
    if _as_json(using, count, len(fields)):
        selected = ", ".join(
            f"{value} AS {name}" for value, name in zip(_json_values(fields, using), names, strict=True)
        )
        source = f"(SELECT {selected} FROM json_array_elements(%s::json) AS v(r)) AS v"  # noqa: S608 (quoted model names only)
    elif connection.vendor == "postgresql":
        row = "(" + ", ".join(f"%s::{field.db_type(connection)}" for field in fields) + ")"
        source = f"(VALUES {', '.join([row] * count)}) AS v ({', '.join(names)})"
    else:
        row = "(" + ", ".join(["%s"] * len(fields)) + ")"
        source = f"(VALUES {', '.join([row] * count)}) AS v"
    table = quote(model._meta.db_table)
    assignments = ", ".join(
        f"{quote(field.column)} = v.{name}" for field, name in zip(fields[1:], names[1:], strict=True)
    )
    return f"UPDATE {table} SET {assignments} FROM {source} WHERE {table}.{quote(model._meta.pk.column)} = v.{names[0]}"  # noqa: S608 (quoted model names only)


def update_rows(
    model: type[models.Model],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    using: str,
    batch_size: int = INSERT_BATCH_SIZE,
) -> int:
    """UPDATE ``columns`` of the rows whose primary keys lead each row of ``rows`` (values in
    database form), in as few statements as possible; how many rows were updated."""
    connection = connections[using]
    updated = 0
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        with connection.cursor() as cursor:
            statement = update_statement(model, columns, len(batch), using)
            cursor.execute(statement, _params(batch, _as_json(using, len(batch), len(columns) + 1)))
            updated += cursor.rowcount
    return updated

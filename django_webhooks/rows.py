"""Multi-row ``INSERT`` statements for the hot paths: events (capture) and attempts (delivery).

The ORM's ``bulk_create`` prepares every value of every field through the field classes, and on
PostgreSQL sends each column as an array (``UNNEST``), which psycopg quotes in Python element
by element; for rows that are written by the thousand per second that costs more than the
statement itself. Here the statement text is built once per table, column list and row count
(from the model's own table and column names, quoted by the backend), and the caller passes
values already in their database form: JSON as text, datetimes through
``connection.ops.adapt_datetimefield_value``.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from django.db import connections, models

#: Rows in one INSERT statement.
INSERT_BATCH_SIZE = 500


def returns_ids(using: str, count: int) -> bool:
    """Whether an INSERT of ``count`` rows on ``using`` can return their primary keys."""
    features = connections[using].features
    return features.can_return_columns_from_insert and (count == 1 or features.can_return_rows_from_bulk_insert)


@functools.lru_cache(maxsize=128)
def insert_statement(model: type[models.Model], columns: tuple[str, ...], count: int, using: str) -> str:
    """``INSERT INTO <table> (<columns>) VALUES (...), ... [RETURNING <pk>]`` for ``count`` rows.

    ``columns`` are field names; their values are parameters (``%s``).
    """
    connection = connections[using]
    quote = connection.ops.quote_name
    column_of = {field.name: field.column for field in model._meta.concrete_fields}
    names = ", ".join(quote(column_of[name]) for name in columns)
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    returning = f" RETURNING {quote(model._meta.pk.column)}" if returns_ids(using, count) else ""
    return f"INSERT INTO {quote(model._meta.db_table)} ({names}) VALUES {', '.join([row] * count)}{returning}"  # noqa: S608 (quoted model names only)


def insert_rows(
    model: type[models.Model],
    columns: tuple[str, ...],
    rows: Sequence[Sequence[object]],
    using: str,
    batch_size: int = INSERT_BATCH_SIZE,
) -> list[int | None]:
    """INSERT ``rows`` (values in ``columns`` order, in database form) in as few statements as
    possible; their primary keys in order, or None where the backend cannot return them."""
    connection = connections[using]
    table, pk_column = model._meta.db_table, model._meta.pk.column
    pks: list[int | None] = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        params = [value for row in batch for value in row]
        with connection.cursor() as cursor:
            cursor.execute(insert_statement(model, columns, len(batch), using), params)
            if returns_ids(using, len(batch)):
                pks += [pk for (pk,) in cursor.fetchall()]
            elif len(batch) == 1:
                pks.append(connection.ops.last_insert_id(cursor, table, pk_column))
            else:
                pks += [None] * len(batch)
    return pks

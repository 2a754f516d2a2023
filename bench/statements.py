"""Counting the SQL statements benchmark processes send, for bench.db_cost (no pg_stat_statements needed).

With ``BENCH_STATEMENTS_DIR`` set, bench/settings.py installs this app: every database
connection the process opens gets an execute wrapper that counts each ``execute()`` and
``executemany()`` by kind ("SELECT django_webhooks_delivery", "UPDATE ...", "SAVEPOINT"),
keyed by the statement's verb and its top-level table. Counts live in a memory-mapped file per
process (``<pid>.counts``, with the key of each slot in ``<pid>.keys``), so they survive a
worker killed at the end of a run; :func:`read_counts` adds them up. A cached statement costs a
dict lookup and an add, well under a microsecond.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.db.backends.signals import connection_created

SLOTS = 1024
_WORD = re.compile(r'\b(FROM|INTO|UPDATE)\s+"?(\w+)"?', re.IGNORECASE)
#: SQL text -> slot, for at most this many distinct statements (then each is classified again).
CACHE_LIMIT = 50_000


def statement_kind(sql: str, many: bool) -> str:
    """``"<VERB> <table>"``: the first word, and the table named at the top level (not in a subquery)."""
    text = sql.lstrip()
    verb = text.split(None, 1)[0].upper() if text else "?"
    table = ""
    if verb not in ("SAVEPOINT", "RELEASE", "ROLLBACK", "SET", "SHOW"):
        for match in _WORD.finditer(text):
            if text.count("(", 0, match.start()) == text.count(")", 0, match.start()):
                table = match.group(2)
                break
    kind = f"{verb} {table}".strip()
    return f"{kind} (executemany)" if many else kind


class StatementCounter:
    """This process's counts, in ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.directory = directory
        path = directory / f"{self.pid}.counts"
        with path.open("wb") as fh:
            fh.truncate(8 * SLOTS)
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), 8 * SLOTS)
        self.counts = memoryview(self._map).cast("q")
        self.slots: dict[str, int] = {}
        self.by_sql: dict[str, int] = {}
        self.lock = threading.Lock()

    def _slot(self, sql: str, many: bool) -> int:
        kind = statement_kind(sql, many)
        if kind not in self.slots and len(self.slots) >= SLOTS - 1:
            kind = "(other kinds)"
        slot = self.slots.get(kind)
        if slot is None:
            slot = self.slots[kind] = len(self.slots)
            keys = self.directory / f"{self.pid}.keys"
            keys.with_suffix(".tmp").write_text(json.dumps(self.slots))
            keys.with_suffix(".tmp").replace(keys)
        if len(self.by_sql) < CACHE_LIMIT:
            self.by_sql[sql] = slot
        return slot

    def count(self, sql: str, many: bool) -> None:
        with self.lock:
            slot = self.by_sql.get(sql)
            if slot is None:
                slot = self._slot(sql, many)
            self.counts[slot] += 1


_counter: StatementCounter | None = None


def _process_counter() -> StatementCounter:
    global _counter
    if _counter is None or _counter.pid != os.getpid():  # a forked worker gets its own file
        _counter = StatementCounter(Path(os.environ["BENCH_STATEMENTS_DIR"]))
    return _counter


def count_statement(execute, sql, params, many, context) -> Any:
    _process_counter().count(sql, many)
    return execute(sql, params, many, context)


def _install(sender: Any, connection: Any, **kwargs: Any) -> None:
    if count_statement not in connection.execute_wrappers:
        connection.execute_wrappers.append(count_statement)


def read_counts(directory: Path) -> Counter[str]:
    """The counts of every process that wrote to ``directory``, added up by kind."""
    total: Counter[str] = Counter()
    for keys in directory.glob("*.keys"):
        counts = memoryview(keys.with_suffix(".counts").read_bytes()).cast("q")
        for kind, slot in json.loads(keys.read_text()).items():
            total[kind] += counts[slot]
    return total


class StatementsConfig(AppConfig):
    name = "bench.statements"
    label = "bench_statements"

    def ready(self) -> None:
        connection_created.connect(_install, dispatch_uid="bench-statements")

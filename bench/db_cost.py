"""What each delivery costs the database, on PostgreSQL: ``bench.run --only dbcost --backends postgres``.

Runs the end-to-end workload of bench.run's "ours" (orders created through the ORM, 100 per
transaction, a real ``qcluster`` with 2 workers delivering to nginx) and reports per delivery,
from a snapshot before the first order to one after the last attempt is recorded and the cluster
has stopped (its backends exit, which flushes their statistics):

- WAL bytes: the ``pg_current_wal_lsn()`` difference (the whole server, so other databases'
  writes count in it) and, with ``pg_walinspect``, the records of this database alone (blocks of
  its relations, plus the commit records of transactions that wrote them), split by table, index
  and record type, full-page images apart. A ``CHECKPOINT`` starts the window, so every page
  the run touches first costs one full-page image in every run alike, and a temporary replication
  slot keeps the window's WAL until it is read;
- transactions (``pg_stat_database.xact_commit``) and rows inserted, updated (HOT) and deleted
  per table (``pg_stat_user_tables``), with index scans;
- SQL statements sent, by kind, by the workers and by the order producer (bench/statements.py:
  pg_stat_statements needs a server restart to load);
- CPU milliseconds of the qcluster processes (bench/cpu_split.py's accounting) and of the
  PostgreSQL backends serving them.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from bench.cpu_split import cpu_seconds
from bench.harness import PER_TRANSACTION, PG_URL, Cluster, backend_env, fresh_database, step, wait_for_acks
from bench.nginx import Nginx
from bench.statements import read_counts

DELIVERY_TABLE = "django_webhooks_delivery"
ATTEMPT_TABLE = "django_webhooks_deliveryattempt"
#: Tables of the example shop and of Django itself: the host application's writes, not ours.
HOST_PREFIXES = ("shop_", "auth_", "django_session", "django_content_type", "django_migrations")

WAL_RECORDS = r"""
WITH r AS (
    SELECT xid::text::bigint AS xid, resource_manager AS rmgr, record_type, record_length, fpi_length,
           substring(block_ref FROM 'rel \d+/(\d+)/\d+')::oid AS db,
           substring(block_ref FROM 'rel \d+/\d+/(\d+)')::oid AS filenode
    FROM pg_get_wal_records_info(%(start)s::pg_lsn, %(end)s::pg_lsn)
), ours AS (
    SELECT DISTINCT xid FROM r WHERE db = %(db)s AND xid <> 0
)
SELECT CASE WHEN db = %(db)s THEN filenode END, rmgr, record_type,
       count(*), sum(record_length)::bigint, sum(fpi_length)::bigint
FROM r
WHERE db = %(db)s OR (db IS NULL AND xid IN (SELECT xid FROM ours))
GROUP BY 1, 2, 3
"""

RELATIONS = """
SELECT pg_relation_filenode(c.oid), c.oid, c.relname, c.relkind, i.indrelid, t.oid
FROM pg_class c
LEFT JOIN pg_index i ON i.indexrelid = c.oid
LEFT JOIN pg_class t ON t.reltoastrelid = c.oid
WHERE pg_relation_filenode(c.oid) IS NOT NULL
"""


@dataclass
class Snapshot:
    lsn: str
    #: ``pg_current_wal_flush_lsn()``: pg_walinspect reads no further.
    flushed: str
    database: dict[str, int]
    #: relname -> n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, seq_scan, idx_scan
    tables: dict[str, tuple[int, ...]]
    #: backend pid -> CPU seconds, for the backends connected to the database
    backends: dict[int, float]


@dataclass
class WalRow:
    """WAL records of one relation (None: no relation, e.g. commit records) and record type."""

    relation: str | None
    table: str | None
    is_index: bool
    kind: str
    records: int
    size: int
    fpi: int


class Probe:
    """A connection to the bench database that reads statistics and WAL; it counts its own transactions."""

    def __init__(self) -> None:
        self.conn = psycopg.connect(PG_URL, autocommit=True)
        self.own_transactions = 0
        self.walinspect = False

    def query(self, sql: str, params: object = None) -> list[tuple]:
        self.own_transactions += 1
        cursor = self.conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

    def start(self) -> None:
        """Load pg_walinspect, pin WAL from now on (a temporary slot), checkpoint."""
        try:
            self.query("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
            self.walinspect = True
        except psycopg.Error:
            self.walinspect = False
        if self.walinspect:  # without a slot, a checkpoint may recycle the WAL before it is read
            with contextlib.suppress(psycopg.Error):
                self.query(
                    "SELECT pg_create_physical_replication_slot(%s, true, true)", [f"bench_db_cost_{os.getpid()}"]
                )
        self.query("CHECKPOINT")

    def snapshot(self) -> Snapshot:
        with self.conn.transaction():
            self.own_transactions += 1
            self.conn.execute("SELECT pg_stat_clear_snapshot()")
            lsn, flushed = self.conn.execute(
                "SELECT pg_current_wal_lsn()::text, pg_current_wal_flush_lsn()::text"
            ).fetchone()
            cur = self.conn.execute(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
            database = dict(zip([c.name for c in cur.description], cur.fetchone(), strict=True))
            tables = {
                name: tuple(values)
                for name, *values in self.conn.execute(
                    "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, "
                    "coalesce(seq_scan, 0), coalesce(idx_scan, 0) FROM pg_stat_user_tables"
                )
            }
            pids = [
                pid
                for (pid,) in self.conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ]
        return Snapshot(lsn, flushed, database, tables, {pid: cpu_seconds([pid]) for pid in pids})

    def backends(self) -> dict[int, float]:
        rows = self.query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid: cpu_seconds([pid]) for (pid,) in rows}

    def wait_until_recorded(self, deliveries: int, timeout: float = 120) -> None:
        """Until every delivery has its attempt recorded and none is pending or in flight."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ((attempts,),) = self.query(f"SELECT count(*) FROM {ATTEMPT_TABLE}")
            ((open_,),) = self.query(f"SELECT count(*) FROM {DELIVERY_TABLE} WHERE status IN ('pending', 'in_flight')")
            if attempts >= deliveries and not open_:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{attempts} of {deliveries} attempts recorded, {open_} deliveries open after {timeout} s")

    def wait_for_no_backends(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.backends():
            time.sleep(0.1)

    def wal(self, start: str, end: str) -> list[WalRow]:
        if not self.walinspect:
            return []
        ((db,),) = self.query("SELECT oid FROM pg_database WHERE datname = current_database()")
        relations = {}
        for filenode, oid, name, kind, index_of, toast_of in self.query(RELATIONS):
            relations[filenode] = (oid, name, kind, index_of, toast_of)
        by_oid = {oid: (name, kind, index_of, toast_of) for oid, name, kind, index_of, toast_of in relations.values()}

        def owner(oid: int) -> str:
            name, kind, index_of, toast_of = by_oid[oid]
            if index_of:
                return owner(index_of)
            if toast_of:
                return owner(toast_of)
            return name

        rows = []
        for filenode, rmgr, record_type, records, size, fpi in self.query(
            WAL_RECORDS, {"start": start, "end": end, "db": db}
        ):
            known = relations.get(filenode)
            relation = table = None
            is_index = False
            if known:
                relation, table, is_index = known[1], owner(known[0]), known[2] == "i"
            elif filenode is not None:
                relation = table = f"(relfilenode {filenode})"
            rows.append(WalRow(relation, table, is_index, f"{rmgr}/{record_type}", records, size, fpi))
        return rows

    def close(self) -> None:
        self.conn.close()


def _host(table: str) -> bool:
    return table.startswith(HOST_PREFIXES)


@dataclass
class DbCost:
    deliveries: int
    before: Snapshot
    after: Snapshot
    #: The probe's own transactions between the two snapshots (subtracted from xact_commit).
    own_transactions: int
    #: ``pg_wal_lsn_diff`` of the two snapshots.
    lsn_bytes: int
    wal: list[WalRow]
    cluster_cpu: float
    backend_cpu: float
    worker_statements: Counter[str] = field(default_factory=Counter)
    producer_statements: Counter[str] = field(default_factory=Counter)

    def per(self, value: float) -> float:
        return value / self.deliveries

    def table_deltas(self) -> dict[str, tuple[int, ...]]:
        zero = (0,) * 6
        deltas = {}
        for name, values in self.after.tables.items():
            delta = tuple(a - b for a, b in zip(values, self.before.tables.get(name, zero), strict=True))
            if any(delta[:4]) or any(row.table == name for row in self.wal):
                deltas[name] = delta
        return deltas

    def headline(self) -> dict[str, float]:
        """The figures bench.run prints in its table, per delivery."""
        ours = [row for row in self.wal if not (row.table and _host(row.table))]
        rows = sum(sum(d[:2]) + d[3] for name, d in self.table_deltas().items() if not _host(name))
        return {
            "wal_bytes": self.per(sum(row.size for row in self.wal)) if self.wal else self.per(self.lsn_bytes),
            "wal_bytes_ours": self.per(sum(row.size for row in ours)) if self.wal else float("nan"),
            "rows_written_ours": self.per(rows),
            "statements_workers": self.per(sum(self.worker_statements.values())),
            "worker_cpu_ms": self.per(self.cluster_cpu) * 1000,
        }

    def lines(self) -> list[str]:
        n = self.deliveries
        db = {k: self.after.database[k] - self.before.database[k] for k in self.after.database}
        out = [f"Database cost per delivery, PostgreSQL, {n:,} deliveries (host tables marked *)"]

        def row(label: str, value: str) -> None:
            out.append(f"  {label:<58} {value:>16}")

        row("WAL bytes, pg_current_wal_lsn() difference (whole server)", f"{self.per(self.lsn_bytes):,.0f}")
        if self.wal:
            total = sum(r.size for r in self.wal)
            fpi = sum(r.fpi for r in self.wal)
            ours = sum(r.size for r in self.wal if not (r.table and _host(r.table)))
            row("WAL bytes, this database's records (pg_walinspect)", f"{self.per(total):,.0f}")
            row("  of which full-page images", f"{self.per(fpi):,.0f}")
            row("  without the host's own tables (* below)", f"{self.per(ours):,.0f}")
            row("WAL records", f"{self.per(sum(r.records for r in self.wal)):,.1f}")
        row("transactions committed", f"{self.per(db['xact_commit'] - self.own_transactions):.3f}")
        row(
            "rows inserted / updated / deleted (all tables)",
            f"{self.per(db['tup_inserted']):.2f} / "
            f"{self.per(db['tup_updated']):.2f} / {self.per(db['tup_deleted']):.2f}",
        )
        for label, statements in (("workers", self.worker_statements), ("order producer", self.producer_statements)):
            row(f"SQL statements sent, {label}", f"{self.per(sum(statements.values())):.2f}")
        row("CPU ms, qcluster processes", f"{self.per(self.cluster_cpu) * 1000:.3f}")
        row("CPU ms, PostgreSQL backends serving the cluster", f"{self.per(self.backend_cpu) * 1000:.3f}")

        wal_by_table: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
        for r in self.wal:
            if r.table:
                wal_by_table[r.table][1 if r.is_index else 0] += r.size
                wal_by_table[r.table][2] += r.fpi
        out.append(
            f"  {'table':<37} {'ins':>6} {'upd':>6} {'(hot)':>6} {'del':>6} {'scans':>7}"
            f" {'WAL heap':>9} {'WAL idx':>8} {'(FPI)':>7}"
        )
        for name, (ins, upd, hot, dele, seq, idx) in sorted(self.table_deltas().items()):
            heap, index, fpi = wal_by_table.get(name, [0.0, 0.0, 0.0])
            mark = "*" if _host(name) else " "
            out.append(
                f"  {mark}{name:<36} {ins / n:6.2f} {upd / n:6.2f} {hot / n:6.2f} {dele / n:6.2f} {(seq + idx) / n:7.2f}"
                f" {heap / n:9.0f} {index / n:8.0f} {fpi / n:7.0f}"
            )
        if self.wal:
            indexes: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
            for r in self.wal:
                if r.is_index and r.relation:
                    indexes[r.relation][0] += r.records
                    indexes[r.relation][1] += r.size
                    if r.kind.endswith(("INSERT_LEAF", "INSERT_POST", "/INSERT")):
                        indexes[r.relation][2] += r.records
            out.append(f"  {'index':<60} {'entries':>8} {'records':>8} {'WAL bytes':>10}")
            for name, (records, size, entries) in sorted(indexes.items(), key=lambda item: -item[1][1]):
                out.append(f"  {name:<60} {entries / n:8.2f} {records / n:8.2f} {size / n:10.0f}")
            kinds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for r in self.wal:
                kinds[r.kind][0] += r.records
                kinds[r.kind][1] += r.size
            out.append(f"  {'WAL record type':<60} {'records':>8} {'bytes':>10}")
            for kind, (records, size) in sorted(kinds.items(), key=lambda item: -item[1][1])[:15]:
                out.append(f"  {kind:<60} {records / n:8.2f} {size / n:10.0f}")
        for label, statements in (("workers", self.worker_statements), ("order producer", self.producer_statements)):
            out.append(f"  SQL statements per 1,000 deliveries, {label}:")
            for kind, count in statements.most_common(20):
                out.append(f"    {kind:<66} {count * 1000 / n:8.1f}")
        return out


def db_cost(nginx: Nginx, url: str, orders: int) -> DbCost:
    """Run ``orders`` orders end to end on PostgreSQL + Redis and measure what the database did."""
    env = backend_env("postgres")
    fresh_database("postgres")
    step(env, "prepare", url, 1)
    with tempfile.TemporaryDirectory(prefix="dwh-statements-") as tmp:
        workers_dir, producer_dir = Path(tmp, "workers"), Path(tmp, "producer")
        workers_dir.mkdir()
        producer_dir.mkdir()
        probe = Probe()
        try:
            probe.start()
            with Cluster(backend_env("postgres", BENCH_STATEMENTS_DIR=str(workers_dir))) as cluster:
                nginx.reset_log()
                probe.query("CHECKPOINT")
                before = probe.snapshot()
                own_before = probe.own_transactions
                cpu_before = cpu_seconds(cluster._pids())
                producer_env = backend_env("postgres", BENCH_STATEMENTS_DIR=str(producer_dir))
                step(producer_env, "produce", orders, 0, PER_TRANSACTION)
                wait_for_acks(nginx, orders, timeout=max(120, orders / 20))
                probe.wait_until_recorded(orders)
                cluster_cpu = cpu_seconds(cluster._pids()) - cpu_before
                serving = probe.backends()
            backend_cpu = sum(cpu - before.backends.get(pid, 0.0) for pid, cpu in serving.items())
            probe.wait_for_no_backends()
            # The first snapshot's own transaction ends after it read the counters: it counts too.
            own = probe.own_transactions - own_before + 1
            after = probe.snapshot()
            ((lsn_bytes,),) = probe.query("SELECT pg_wal_lsn_diff(%s, %s)::bigint", [after.lsn, before.lsn])
            wal = probe.wal(before.lsn, after.flushed)
        finally:
            probe.close()
        return DbCost(
            deliveries=orders,
            before=before,
            after=after,
            own_transactions=own,
            lsn_bytes=lsn_bytes,
            wal=wal,
            cluster_cpu=cluster_cpu,
            backend_cpu=backend_cpu,
            worker_statements=read_counts(workers_dir),
            producer_statements=read_counts(producer_dir),
        )

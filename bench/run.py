"""One command for every benchmark: ``.venv/bin/python -m bench.run``.

Starts nginx on loopback as the receiver, then measures, in this one run: the ceiling (a bare
signed-POST loop with each HTTP client of bench/ceiling.py, 1 and 2 processes), a naive design
(one django-q2 task per order), and ours end to end, at low load (latency), from a large
backlog (at several sizes, bench/scale.py), fanning out to many subscriptions, with slow
endpoints mixed in, the database cost per delivery (bench/db_cost.py) and several clusters on
one database (bench/clusters.py); on SQLite + ORM broker and on PostgreSQL + Redis. Prints a
table of figures and ratios; every ratio to "the ceiling" is to the fastest client's in this
run (``Ceilings.reference``). See BENCHMARKS.md.

Options: ``--backends sqlite,postgres``, ``--orders 5000``, ``--backlog 100000[,1000000]``,
``--fanout 10000``, ``--clusters 3``, ``--cluster-backlog 30000``, ``--quick`` (small sizes, to
check the harness), ``--only PARTS``, ``--tree DIR`` (measure another tree, e.g. a ``git
archive`` of an older commit, with this checkout's bench code).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.ceiling import Ceilings, measure
from bench.harness import (
    PER_TRANSACTION,
    Cluster,
    backend_env,
    fresh_database,
    project_root,
    step,
    use_tree,
    wait_for_acks,
)
from bench.nginx import Nginx

PARTS = ("ceiling", "naive", "ours", "latency", "backlog", "fanout", "isolation", "write", "dbcost", "clusters")


def end_to_end(backend: str, nginx: Nginx, url: str, orders: int, design: str) -> float:
    """Deliveries per second from the first order created to the last acknowledged."""
    env = backend_env(backend, BENCH_DESIGN=design, BENCH_TARGET_URL=url)
    fresh_database(backend)
    step(env, "prepare", url, 1)
    with Cluster(env):
        nginx.reset_log()
        # The naive design enqueues in post_save, before commit: with several orders per
        # transaction its worker would look for rows not yet committed, so it gets one each.
        produced = step(env, "produce", orders, 0, 1 if design == "naive" else PER_TRANSACTION)
        last = wait_for_acks(nginx, orders, timeout=max(120, orders / 20))
    return orders / (last - produced["started"])


def latency(backend: str, nginx: Nginx, url: str, count: int) -> tuple[float, float]:
    """p50 and p99 milliseconds from commit to the receiver, one event every 50 ms."""
    env = backend_env(backend)
    fresh_database(backend)
    step(env, "prepare", url, 1)
    with Cluster(env):
        time.sleep(2)
        nginx.reset_log()
        step(env, "produce", count, 0.05)
        wait_for_acks(nginx, count, timeout=120)
        created = step(env, "latencies")
    samples = sorted((t - created[msg]) * 1000 for t, msg in nginx.acknowledged() if msg in created)
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def fanout(backend: str, url: str, subscriptions: int) -> dict:
    env = backend_env(backend)
    fresh_database(backend)
    step(env, "prepare", url, subscriptions)
    return step(env, "fanout", subscriptions)


def isolation(backend: str, nginx: Nginx, url: str, orders: int) -> float:
    """Healthy deliveries/s with 20 of 200 endpoints answering after 10 s, over all-healthy."""
    from tests.receiver import Receiver, Reply

    rates = []
    with Receiver() as slow:
        slow.script = [Reply(200, delay=10)]
        for n_slow in (0, 20):
            env = backend_env(backend)
            fresh_database(backend)
            step(env, "prepare", url, 200 - n_slow, slow.url("/slow"), n_slow)
            healthy = orders * (200 - n_slow)
            with Cluster(env):
                nginx.reset_log()
                produced = step(env, "produce", orders, 0, PER_TRANSACTION)
                last = wait_for_acks(nginx, healthy, timeout=600)
            rates.append(healthy / (last - produced["started"]))
    return rates[1] / rates[0]


def write_path(backend: str) -> str:
    env = backend_env(backend)
    fresh_database(backend)
    out = subprocess.run(
        [sys.executable, str(project_root() / "bench" / "write_path.py")],
        env=env,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return out.stdout.strip() if out.returncode == 0 else f"failed: {out.stderr[-500:]}"


def notes(*items: object) -> str:
    """The notes of a report line that apply (the others are "", None or False)."""
    return "; ".join(str(item) for item in items if item)


def against(ceilings: Ceilings, rate: float, processes: int, target: float) -> str:
    """``rate`` over the reference ``processes``-process ceiling, with its target ("" if not measured)."""
    ratio = ceilings.ratio(rate, processes)
    return ratio and f"{ratio} (target >= {target})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument(
        "--backlog", default="100000", help="backlog sizes, comma-separated; the others are compared to the first"
    )
    parser.add_argument("--window-seconds", type=float, default=60.0, help="backlog drain window, at most")
    parser.add_argument("--window-deliveries", type=int, default=100_000, help="backlog drain window, at most")
    parser.add_argument("--fanout", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=3)
    parser.add_argument("--cluster-backlog", type=int, default=30_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument("--only", default="", help="comma-separated parts: " + ",".join(PARTS))
    parser.add_argument("--plans", action="store_true", help="print the plan of each backlog query's slowest statement")
    parser.add_argument("--tree", type=Path, help="measure this tree's django_webhooks (see bench/harness.py)")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.backlog, args.fanout, args.cluster_backlog = 500, "2000,10000", 1000, 3000
    sizes = [int(size) for size in args.backlog.split(",")]
    parts = set(filter(None, args.only.split(","))) or set(PARTS)
    if unknown := parts - set(PARTS):
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    if args.tree:
        use_tree(args.tree)

    def report(name: str, value: str, note: str = "") -> None:
        print(f"{name:<58} {value:>14}  {note}", flush=True)

    print(f"django-webhooks benchmarks, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    print(f"tree under test: {project_root()}", flush=True)
    nginx = Nginx()
    with nginx as url:
        ceilings = Ceilings()
        if "ceiling" in parts:
            ceilings = measure(url, args.orders)
            for (client, n), rate in ceilings.rates.items():
                fastest = ceilings.reference(n)
                report(
                    f"ceiling: bare {client}, {n} process{'es' if n > 1 else ''}",
                    f"{rate:,.0f}/s",
                    "the reference" if fastest and fastest[0] == client else "",
                )
        for backend in args.backends.split(","):
            label = "SQLite+ORM" if backend == "sqlite" else "PostgreSQL+Redis"
            naive = ours = None
            if "naive" in parts:
                naive = end_to_end(backend, nginx, url, args.orders, "naive")
                report(f"[{label}] naive: 1 async_task per order", f"{naive:,.0f}/s")
            if "ours" in parts:
                ours = end_to_end(backend, nginx, url, args.orders, "ours")
                report(
                    f"[{label}] ours: end to end, {args.orders:,} orders, 2 workers",
                    f"{ours:,.0f}/s",
                    notes(
                        against(ceilings, ours, 2, 0.5 if backend == "postgres" else 0.4),
                        naive and f"{ours / naive:.1f}x naive (target >= 3)",
                    ),
                )
            if "latency" in parts:
                p50, p99 = latency(backend, nginx, url, 200)
                report(
                    f"[{label}] latency commit->receiver, p50 / p99",
                    f"{p50:.0f} / {p99:.0f} ms",
                    "target <= 50 / 250 ms (PostgreSQL + Redis, issue 12)",
                )
            if "backlog" in parts:
                backlog_report(backend, label, nginx, url, sizes, args, ceilings, ours, report)
            if "fanout" in parts:
                result = fanout(backend, url, args.fanout)
                report(
                    f"[{label}] fan-out of 1 event to {args.fanout:,} subscriptions",
                    f"{result['seconds']:.2f} s",
                    f"peak RSS {result['peak_rss_mb']:.0f} MB; target < 5 s",
                )
            if "isolation" in parts:
                ratio = isolation(backend, nginx, url, max(10, args.orders // 200))
                report(
                    f"[{label}] isolation: 20 of 200 endpoints take 10 s",
                    f"{ratio:.2f}x",
                    "healthy rate vs all healthy (target >= 0.9)",
                )
            if "write" in parts:
                print(write_path(backend), flush=True)
            if "dbcost" in parts and backend == "postgres":
                from bench.db_cost import db_cost

                cost = db_cost(nginx, url, args.orders)
                figures = cost.headline()
                report(f"[{label}] WAL bytes per delivery", f"{figures['wal_bytes']:,.0f}", "this database's records")
                report(f"[{label}] rows written per delivery", f"{figures['rows_written_ours']:.2f}", "ours only")
                report(f"[{label}] SQL statements per delivery, workers", f"{figures['statements_workers']:.2f}")
                report(
                    f"[{label}] worker CPU per delivery (2 workers)",
                    f"{figures['worker_cpu_ms']:.3f} ms",
                    "target <= 0.6 ms",
                )
                print("\n".join(cost.lines()), flush=True)
            if "clusters" in parts and backend == "postgres":
                clusters_report(label, nginx, url, args, ceilings, report)


def backlog_report(backend, label, nginx, url, sizes, args, ceilings: Ceilings, ours, report) -> None:
    from bench.scale import backlog

    reference = None
    for size in sizes:
        run = backlog(backend, nginx, url, size, args.window_seconds, args.window_deliveries)
        reference = reference or run
        name = f"[{label}] backlog of {size:,}"
        report(f"{name}: seeded", f"{run.seed_seconds:.1f} s")
        for call, cost in run.claim["calls"].items():
            report(
                f"{name}: {call}, median / max",
                f"{cost['median_ms']:.1f} / {cost['max_ms']:.1f} ms",
                notes(
                    call.startswith("claim") and f"{run.claim['claimed_per_round']:.0f} deliveries",
                    f"{cost['statements']:.0f} statements, {cost['db_ms']:.1f} ms in the database",
                    f"slowest {cost['slowest']['kind']} {cost['slowest']['median_ms']:.1f} ms",
                ),
            )
            if args.plans and cost["plan"]:
                print("\n".join(f"    {line}" for line in cost["plan"]), flush=True)
        report(
            f"{name}: drain rate, {run.window_deliveries:,} in {run.window_seconds:.1f} s",
            f"{run.rate:,.0f}/s",
            notes(
                against(ceilings, run.rate, 2, 0.8),
                ours and f"{run.rate / ours:.2f}x end-to-end rate",
                run is not reference
                and f"{run.rate / reference.rate:.2f}x the {reference.size:,} backlog (target 0.9-1.1)",
                f"first delivery {run.startup_seconds:.1f} s after the sweep",
            ),
        )
        report(f"{name}: peak RSS of one cluster process", f"{run.peak_rss_mb:.0f} MB", "target < 150 MB")
        report(f"{name}: worker CPU per delivery, no producer", f"{run.worker_cpu_ms:.3f} ms", "2 workers, the window")


def clusters_report(label, nginx, url, args, ceilings: Ceilings, report) -> None:
    from bench.clusters import SUBSCRIPTIONS, clusters

    alone = None
    for n in (1, args.clusters):
        run = clusters("postgres", nginx, url, args.cluster_backlog, n)
        alone = alone or run
        name = f"[{label}] {n} cluster{'s' if n > 1 else ''} x 1 worker, {args.cluster_backlog:,} due"
        report(
            f"{name}",
            f"{run.rate:,.0f}/s",
            notes(
                f"{SUBSCRIPTIONS} subscriptions",
                ceilings.ratio(run.rate, min(n, 2)),
                run is not alone and f"{run.rate / alone.rate:.2f}x 1 cluster",
            ),
        )
        check = run.check
        report(
            f"{name}: per cluster",
            " / ".join(f"{d:,}" for d in run.per_cluster()),
            f"claims disjoint: {'yes' if run.disjoint() else 'NO'} ({check['succeeded']:,} succeeded, "
            f"{check['attempt_rows']:,} attempts, {check['attempted_more_than_once']} attempted twice, "
            f"{check['ids_logged_more_than_once']} webhook-ids received twice, "
            f"{check['log_differs_from_attempts']} log/attempt mismatches, {check['ids_unknown']} unknown ids)",
        )


if __name__ == "__main__":
    main()

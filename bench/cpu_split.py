"""Where the CPU goes in the end-to-end run: ``.venv/bin/python -m bench.cpu_split [--backend postgres]``.

Runs the same scenario as bench.run's "ours: end to end" and reports the CPU seconds spent by
each party (the order producer, the qcluster processes, PostgreSQL, Redis, nginx) against the
wall time, on this 2-core machine. A party's share of 2 x wall time is how much of the
machine it held.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

from bench.harness import PER_TRANSACTION, Cluster, backend_env, fresh_database, step, wait_for_acks
from bench.nginx import Nginx

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime
    return total


def pids_named(name: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == name:
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument("--orders", type=int, default=5000)
    args = parser.parse_args()
    nginx = Nginx()
    with nginx as url:
        env = backend_env(args.backend)
        fresh_database(args.backend)
        step(env, "prepare", url, 1)
        with Cluster(env) as cluster:
            nginx.reset_log()
            parties = {
                "qcluster (2 workers + monitor + pusher)": cluster._pids,
                "postgres": lambda: pids_named("postgres"),
                "redis-server": lambda: pids_named("redis-server"),
                "nginx": lambda: pids_named("nginx"),
            }
            before = {name: cpu_seconds(pids()) for name, pids in parties.items()}
            children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.time()
            step(env, "produce", args.orders, 0, PER_TRANSACTION)
            children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
            last = wait_for_acks(nginx, args.orders, timeout=600)
            after = {name: cpu_seconds(pids()) for name, pids in parties.items()}
    wall = last - started
    producer = (children_after.ru_utime + children_after.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    print(f"{args.backend}: {args.orders:,} orders delivered in {wall:.2f} s ({args.orders / wall:,.0f}/s)")
    print(f"{'party':<42} {'CPU s':>7} {'share of 2 cores':>17}")
    rows = {"order producer (Django, bindings)": producer, **{k: after[k] - before[k] for k in parties}}
    for name, seconds in rows.items():
        print(f"{name:<42} {seconds:7.2f} {seconds / (2 * wall):16.0%}")
    print(f"{'all':<42} {sum(rows.values()):7.2f} {sum(rows.values()) / (2 * wall):16.0%}")


if __name__ == "__main__":
    main()

"""One command for every benchmark: ``.venv/bin/python -m bench.run``.

Starts nginx on loopback as the receiver, then measures, in this one run:
the ceiling (a bare requests.Session loop, 1 and 2 processes), a naive design (one django-q2
task per order), and ours end to end, at low load (latency), from a large backlog, fanning out
to many subscriptions and with slow endpoints mixed in; on SQLite + ORM broker and on
PostgreSQL + Redis. Prints a table of figures and ratios. See BENCHMARKS.md.

Options: ``--backends sqlite,postgres``, ``--orders 5000``, ``--backlog 100000``,
``--fanout 10000``, ``--quick`` (small sizes, to check the harness).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.ceiling import ceiling
from bench.nginx import Nginx

ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgres://postgres@127.0.0.1:5432/dwh_bench"
REDIS_URL = "redis://127.0.0.1:6379/9"
SQLITE_PATH = Path(tempfile.gettempdir()) / "dwh-bench.sqlite3"
#: Orders per transaction in the throughput runs (see scenarios.produce).
PER_TRANSACTION = 100


def backend_env(backend: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")}
    env.update(DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(ROOT))
    if backend == "postgres":
        env.update(DATABASE_URL=PG_URL, REDIS_URL=REDIS_URL)
    else:
        env["SQLITE_PATH"] = str(SQLITE_PATH)
    env.update(extra)
    return env


def fresh_database(backend: str) -> None:
    if backend == "postgres":
        import psycopg
        import redis

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS dwh_bench WITH (FORCE)")
            conn.execute("CREATE DATABASE dwh_bench")
        redis.Redis.from_url(REDIS_URL).flushdb()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(str(SQLITE_PATH) + suffix).unlink(missing_ok=True)


def step(env: dict[str, str], name: str, *args: object) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.scenarios", name, *map(str, args)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if out.returncode:
        raise RuntimeError(f"bench step {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class Cluster:
    """A real ``manage.py qcluster`` (2 workers); samples the RSS of all its processes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> Cluster:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            env=self.env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()
        time.sleep(3)  # let the workers start
        return self

    def _pids(self) -> list[int]:
        pids, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                children = []
            todo.extend(int(c) for c in children)
        return pids

    def worker_rss_mb(self) -> float:
        """The largest RSS of any one process of the cluster."""
        largest = 0.0
        for pid in self._pids():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        largest = max(largest, int(line.split()[1]) / 1024)
            except OSError:
                pass
        return largest

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_rss_mb = max(self.peak_rss_mb, self.worker_rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def wait_for_acks(nginx: Nginx, count: int, timeout: float) -> float:
    """Wait until the receiver answered ``count`` requests; the time of the last one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nginx.count() >= count:
            return max(t for t, _ in nginx.acknowledged())
        time.sleep(0.2)
    raise RuntimeError(f"receiver got {nginx.count()} of {count} requests within {timeout:.0f} s")


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


def backlog(backend: str, nginx: Nginx, url: str, count: int) -> tuple[float, float]:
    """Drain rate of ``count`` pending deliveries, and the peak RSS of one cluster process."""
    env = backend_env(backend)
    fresh_database(backend)
    step(env, "prepare", url, 1)
    step(env, "backlog", count)
    nginx.reset_log()
    with Cluster(env) as cluster:
        start = time.time()
        subprocess.run([sys.executable, "manage.py", "webhooks_sweep"], env=env, cwd=ROOT, capture_output=True)
        last = wait_for_acks(nginx, count, timeout=max(300, count / 50))
        rss = cluster.peak_rss_mb
    return count / (last - start), rss


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
    script = ROOT / "bench" / "write_path.py"
    env = backend_env(backend)
    fresh_database(backend)
    out = subprocess.run([sys.executable, str(script)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800)
    return out.stdout.strip() if out.returncode == 0 else f"failed: {out.stderr[-500:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--orders", type=int, default=5000)
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--fanout", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the harness")
    parser.add_argument(
        "--only", default="", help="comma-separated parts: ceiling,naive,ours,latency,backlog,fanout,isolation,write"
    )
    args = parser.parse_args()
    if args.quick:
        args.orders, args.backlog, args.fanout = 500, 2000, 1000
    parts = set(filter(None, args.only.split(","))) or {
        "ceiling",
        "naive",
        "ours",
        "latency",
        "backlog",
        "fanout",
        "isolation",
        "write",
    }
    rows: list[tuple[str, str, str]] = []

    def report(name: str, value: str, note: str = "") -> None:
        rows.append((name, value, note))
        print(f"{name:<58} {value:>14}  {note}", flush=True)

    print(f"django-webhooks benchmarks, {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    nginx = Nginx()
    with nginx as url:
        ceil2 = None
        if "ceiling" in parts:
            ceil1 = ceiling(url, 1, args.orders)
            ceil2 = ceiling(url, 2, args.orders)
            report("ceiling: bare requests.Session, 1 process", f"{ceil1:,.0f}/s")
            report("ceiling: bare requests.Session, 2 processes", f"{ceil2:,.0f}/s")
        for backend in args.backends.split(","):
            label = "SQLite+ORM" if backend == "sqlite" else "PostgreSQL+Redis"
            naive = None
            if "naive" in parts:
                naive = end_to_end(backend, nginx, url, args.orders, "naive")
                report(f"[{label}] naive: 1 async_task per order", f"{naive:,.0f}/s")
            if "ours" in parts:
                ours = end_to_end(backend, nginx, url, args.orders, "ours")
                notes = []
                if ceil2:
                    notes.append(f"{ours / ceil2:.2f}x 2-process ceiling (target >= 0.5)")
                if naive:
                    notes.append(f"{ours / naive:.1f}x naive (target >= 3)")
                report(
                    f"[{label}] ours: end to end, {args.orders:,} orders, 2 workers", f"{ours:,.0f}/s", "; ".join(notes)
                )
            if "latency" in parts:
                p50, p99 = latency(backend, nginx, url, 200)
                report(
                    f"[{label}] latency commit->receiver, p50 / p99",
                    f"{p50:.0f} / {p99:.0f} ms",
                    "target <= 100 / 500 ms",
                )
            if "backlog" in parts:
                rate, rss = backlog(backend, nginx, url, args.backlog)
                note = f"{rate / ours:.2f}x small-run rate (target >= 0.8)" if "ours" in parts else ""
                report(f"[{label}] backlog of {args.backlog:,}: drain rate", f"{rate:,.0f}/s", note)
                report(f"[{label}] backlog: peak RSS of one cluster process", f"{rss:.0f} MB", "target < 300 MB")
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
                    "healthy rate vs all healthy (target >= 0.8)",
                )
            if "write" in parts:
                print(write_path(backend), flush=True)


if __name__ == "__main__":
    main()

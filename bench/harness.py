"""The plumbing every benchmark shares: databases, the tree under test, steps in subprocesses, clusters.

Each benchmark process runs Django with bench/settings.py on one backend: PostgreSQL + Redis
(the database ``BENCH_DATABASE``, default ``bench_dwh``, and Redis db ``BENCH_REDIS_DB``,
default 12) or SQLite + django-q2's ORM broker (``/tmp/<BENCH_DATABASE>.sqlite3``). Both are
dropped and made again before each scenario.

The tree under test is this checkout, or another one (``BENCH_TREE``, set by ``bench.run
--tree``: a ``git archive`` of an older commit): its ``django_webhooks`` and example project run,
with this checkout's ``bench`` package copied into it, so both trees are measured by the same
instrument.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.nginx import Nginx

ROOT = Path(__file__).resolve().parent.parent
DATABASE = os.environ.get("BENCH_DATABASE", "bench_dwh")
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
PG_URL = f"{PG_SERVER}/{DATABASE}"
REDIS_URL = f"redis://127.0.0.1:6379/{os.environ.get('BENCH_REDIS_DB', '12')}"
SQLITE_PATH = Path(tempfile.gettempdir()) / f"{DATABASE}.sqlite3"
#: Orders per transaction in the throughput runs (see scenarios.produce).
PER_TRANSACTION = 100


def project_root() -> Path:
    """The tree whose ``django_webhooks`` and example project the benchmark processes run."""
    return Path(os.environ.get("BENCH_TREE") or ROOT)


def use_tree(tree: Path) -> None:
    """Measure ``tree`` (an extracted commit) from now on, with this checkout's bench package."""
    tree = tree.resolve()
    if not (tree / "manage.py").exists() or not (tree / "django_webhooks").is_dir():
        raise SystemExit(
            f"{tree} is not a django-webhooks tree; make one with\n"
            f"  mkdir -p {tree} && git -C {ROOT} archive HEAD | tar -x -C {tree}"
        )
    if tree != ROOT:
        shutil.copytree(
            ROOT / "bench", tree / "bench", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
        )
    os.environ["BENCH_TREE"] = str(tree)


def backend_env(backend: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "SQLITE_PATH")}
    env.update(DJANGO_SETTINGS_MODULE="bench.settings", PYTHONPATH=str(project_root()))
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

        with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        redis.Redis.from_url(REDIS_URL).flushdb()
    else:
        for suffix in ("", "-wal", "-shm"):
            Path(str(SQLITE_PATH) + suffix).unlink(missing_ok=True)


def step(env: dict[str, str], name: str, *args: object, timeout: float = 1800) -> dict:
    """Run ``bench.scenarios`` step ``name`` in a Django subprocess; the JSON object it printed last."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.scenarios", name, *map(str, args)],
        env=env,
        cwd=project_root(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode:
        raise RuntimeError(f"bench step {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def sweep(env: dict[str, str]) -> subprocess.Popen:
    """Start ``manage.py webhooks_sweep`` (enqueues delivery tasks for what is due); wait() on it."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "webhooks_sweep"],
        env=env,
        cwd=project_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


class Cluster:
    """A real ``manage.py qcluster`` (``BENCH_WORKERS`` workers, default 2); samples the RSS of its processes."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> Cluster:
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            env=self.env,
            cwd=project_root(),
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


def wait_until_final(env: dict[str, str], timeout: float = 120) -> dict:
    """Until no delivery is pending or in flight (the last attempts are recorded); the status counts."""
    deadline = time.monotonic() + timeout
    while True:
        counts = step(env, "status")
        if not counts.get("pending") and not counts.get("in_flight"):
            return counts
        if time.monotonic() > deadline:
            raise RuntimeError(f"deliveries still open after {timeout:.0f} s: {counts}")
        time.sleep(0.5)

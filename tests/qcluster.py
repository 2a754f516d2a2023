"""Run a real ``manage.py qcluster`` subprocess against the test database.

The subprocess uses ``tests.settings`` with the test database's name (SQLite file or PostgreSQL
database) and the same broker (ORM, or Redis through ``REDIS_URL``). ``overrides`` are merged into
``DJANGO_WEBHOOKS`` and ``q_cluster`` into ``Q_CLUSTER`` there (see tests/settings.py).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
READY_TIMEOUT = 60.0
_redis_flushed = False


def database_env() -> dict[str, str]:
    """Environment variables that point ``tests.settings`` at the current test database."""
    from django.db import connection

    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return {"SQLITE_PATH": settings["NAME"]}
    user = quote(settings.get("USER") or "")
    password = f":{quote(settings['PASSWORD'])}" if settings.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return {"DATABASE_URL": f"postgres://{auth}{host}{port}/{settings['NAME']}", "TEST_DB_NAME": ""}


def flush_redis_once() -> None:
    """Empty the Redis database of ``REDIS_URL`` once per test session (stale tasks of old runs)."""
    global _redis_flushed
    url = os.environ.get("REDIS_URL")
    if url and not _redis_flushed:
        import redis

        redis.Redis.from_url(url).flushdb()
        _redis_flushed = True


class QCluster:
    def __init__(self, overrides: dict | None = None, q_cluster: dict | None = None) -> None:
        self.overrides = overrides or {}
        self.q_cluster = q_cluster or {}
        self.process: subprocess.Popen | None = None
        self.log_path = Path(tempfile.mkstemp(prefix="dwh-qcluster-", suffix=".log")[1])

    def start(self) -> QCluster:
        flush_redis_once()
        env = {
            **os.environ,
            **database_env(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DWH_TEST_OVERRIDES": json.dumps(self.overrides),
            "DWH_TEST_Q_CLUSTER": json.dumps(self.q_cluster),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "qcluster"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if "running." in self.output():
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"qcluster exited early:\n{self.output()}")
            time.sleep(0.1)
        raise RuntimeError(f"qcluster not ready after {READY_TIMEOUT}s:\n{self.output()}")

    def kill(self) -> None:
        """SIGKILL the whole cluster (sentinel, pusher, workers) at once: a machine dying."""
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def shut_down(self, timeout: float = 60.0) -> None:
        """Stop the cluster as ``Ctrl-C`` would and wait until it has exited (bounded): every task
        its workers had taken has then finished; tasks still on the broker stay there."""
        if not self.process or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)  # the main process only: it stops the others in order
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"qcluster did not stop within {timeout}s:\n{self.output()}") from None

    def stop(self) -> None:
        """Ask the cluster to stop; kill it if it takes longer than a moment (tests don't wait)."""
        if not self.process or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.kill()

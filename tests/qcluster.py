"""Run real workers against the test database: ``manage.py qcluster``, or on Django Tasks
(``DWH_DISPATCHER=django_tasks``) as many ``manage.py db_worker`` processes as django-q2 would
have workers (``Q_WORKERS``, 2).

The subprocesses use ``tests.settings`` with the test database's name (SQLite file or PostgreSQL
database) and the same broker (ORM, or Redis through ``REDIS_URL``) or Tasks backend (the
database). ``overrides`` are merged into ``DJANGO_WEBHOOKS`` and ``q_cluster`` into
``Q_CLUSTER`` there (see tests/settings.py); a db_worker takes tasks from the ``QUEUE`` of
``overrides``.
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


def on_django_tasks() -> bool:
    from django.conf import settings

    return settings.DJANGO_WEBHOOKS.get("DISPATCHER") == "django_tasks"


class QCluster:
    """The workers of one machine, for the dispatcher the tests run on: ``process`` is the
    qcluster's main process, or the first db_worker; every process leads its own process group."""

    def __init__(self, overrides: dict | None = None, q_cluster: dict | None = None) -> None:
        self.overrides = overrides or {}
        self.q_cluster = q_cluster or {}
        self.processes: list[subprocess.Popen] = []
        self.log_path = Path(tempfile.mkstemp(prefix="dwh-qcluster-", suffix=".log")[1])

    @property
    def process(self) -> subprocess.Popen | None:
        return self.processes[0] if self.processes else None

    def commands(self) -> list[list[str]]:
        manage = [sys.executable, str(ROOT / "manage.py")]
        if not on_django_tasks():
            return [[*manage, "qcluster"]]
        queue = self.overrides.get("QUEUE") or "default"
        worker = [*manage, "db_worker", "--queue-name", queue, "--interval", "0.05", "--no-startup-delay"]
        workers = int(os.environ.get("Q_WORKERS", "2"))
        return [[*worker, "--no-reload", "--worker-id", f"{queue}-{i}-{os.getpid()}"] for i in range(workers)]

    def start(self) -> QCluster:
        flush_redis_once()
        commands = self.commands()
        overrides = {**self.overrides, "TASKS_WORKERS": len(commands)} if on_django_tasks() else self.overrides
        env = {
            **os.environ,
            **database_env(),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DWH_TEST_OVERRIDES": json.dumps(overrides),
            "DWH_TEST_Q_CLUSTER": json.dumps(self.q_cluster),
            "PYTHONUNBUFFERED": "1",
        }
        with self.log_path.open("ab") as log:
            for command in commands:
                self.processes.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )
        self.wait_ready()
        return self

    def ran(self, task: str) -> bool:
        """Whether a worker started running ``task`` (``"deliver_due"``, ``"sweep"``...)."""
        if on_django_tasks():
            return f"path=django_webhooks.tasks.{task}_task state=RUNNING" in self.output()
        return "processing" in self.output() and task in self.output()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        ready = "Starting worker" if on_django_tasks() else "running."
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.output().count(ready) >= len(self.processes):
                return
            if any(process.poll() is not None for process in self.processes):
                raise RuntimeError(f"workers exited early:\n{self.output()}")
            time.sleep(0.1)
        raise RuntimeError(f"workers not ready after {READY_TIMEOUT}s:\n{self.output()}")

    def _running(self) -> list[subprocess.Popen]:
        return [process for process in self.processes if process.poll() is None]

    def kill(self) -> None:
        """SIGKILL every process (qcluster: sentinel, pusher, workers) at once: a machine dying."""
        running = self._running()
        for process in running:
            os.killpg(process.pid, signal.SIGKILL)
        for process in running:
            process.wait(timeout=10)

    def shut_down(self, timeout: float = 60.0) -> None:
        """Stop the workers as ``Ctrl-C`` would and wait until they have exited (bounded): every task
        they had taken has then finished; tasks still on the broker stay there."""
        running = self._running()
        for process in running:  # the main process only: a qcluster stops the others in order
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            for process in running:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"workers did not stop within {timeout}s:\n{self.output()}") from None

    def stop(self) -> None:
        """Ask the workers to stop; kill them if they take longer than a moment (tests don't wait)."""
        running = self._running()
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            for process in running:
                process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            self.kill()

"""Daemon threads that do the capture side's I/O after the request thread has moved on.

:class:`BackgroundLoop` runs one function whenever it is woken. Waking it is cheap (an attribute
read when a run is already pending), so the request thread can wake it after every commit; wakes
that arrive before the run starts share it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger("django_webhooks.background")


_loops: list[BackgroundLoop] = []


class BackgroundLoop:
    """Call ``work()`` on a daemon thread after each :meth:`wake`, ``coalesce`` seconds later.

    ``work`` must take everything that was submitted before it started: a wake that arrives
    while a run is pending is folded into it. ``on_idle`` runs after ``idle_after`` seconds
    without a wake (to close connections the thread holds). After a fork the child gets a
    fresh loop with nothing pending; the parent keeps its own work.
    """

    def __init__(
        self,
        name: str,
        work: Callable[[], None],
        *,
        coalesce: float = 0.0,
        on_idle: Callable[[], None] | None = None,
        idle_after: float = 60.0,
    ) -> None:
        self.name = name
        self._work = work
        self._coalesce = coalesce
        self._on_idle = on_idle
        self._idle_after = idle_after
        self._reset()
        os.register_at_fork(after_in_child=self._reset)
        _loops.append(self)

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._woken = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._pending = False
        self._release = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        if self._pending:
            return
        with self._lock:
            self._pending = True
            self._signal()

    def release(self, timeout: float = 5.0) -> bool:
        """Finish the pending work, then run ``on_idle`` at once; True if done within ``timeout``."""
        with self._lock:
            self._release = True
            self._signal()
        return self.flush(timeout)

    def _signal(self) -> None:
        self._done.clear()
        self._woken.set()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            if not self._woken.wait(self._idle_after if self._on_idle else None):
                self._call(self._on_idle)
                continue
            if self._pending and self._coalesce:
                time.sleep(self._coalesce)
            with self._lock:
                self._woken.clear()
                work, self._pending = self._pending, False
                release, self._release = self._release, False
            if work:
                self._call(self._work)
            if release:
                self._call(self._on_idle)
            with self._lock:
                if not self._woken.is_set():
                    self._done.set()

    def _call(self, function: Callable[[], None] | None) -> None:
        if function is None:
            return
        try:
            function()
        except Exception:
            logger.exception("%s: %s failed", self.name, getattr(function, "__qualname__", function))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait (at most ``timeout`` seconds) until no run is pending; True if none is."""
        return self._done.wait(timeout)


def close_connections(timeout: float = 5.0) -> bool:
    """Let every background thread finish its work, then close its database connections.

    The threads keep their connections open between runs (and close them after a minute without
    work); call this before dropping or recreating a database, as test teardowns do. True if
    all of them finished within ``timeout`` seconds each.
    """
    released = True
    for loop in reversed(_loops):  # the outbox writer first: its last run wakes the handoff
        released = loop.release(timeout) and released
    return released


def shared_between_threads(using: str) -> bool:
    """Whether a connection opened by another thread sees the database ``using`` names.

    False only for a private in-memory SQLite database (``":memory:"`` without shared cache).
    """
    connection = connections[using]
    if connection.vendor != "sqlite" or not connection.is_in_memory_db():
        return True
    return "cache=shared" in str(connection.settings_dict["NAME"])


def in_test_environment() -> bool:
    """Whether Django's test environment is set up (its test runner, or pytest-django)."""
    from django.core import mail

    return hasattr(mail, "outbox")  # set by django.test.utils.setup_test_environment()


def off_request_thread(using: str, *, in_tests: bool = False) -> bool:
    """Whether database work on ``using`` may move from the calling thread to a background one.

    Not under Django's test runner unless ``in_tests``: tests expect rows to exist as soon as a
    call returns, and run inside transactions another thread's connection cannot see. Never for
    a database other threads cannot open (:func:`shared_between_threads`).
    """
    return (in_tests or not in_test_environment()) and shared_between_threads(using)

from __future__ import annotations

import logging
import threading

import pytest
from django.db import connection

from django_webhooks import background
from django_webhooks.background import BackgroundLoop, in_test_environment, shared_between_threads


@pytest.fixture
def loops():
    started: list[BackgroundLoop] = []

    def make(work, **options):
        loop = BackgroundLoop("test-loop", work, **options)
        started.append(loop)
        return loop

    yield make
    for loop in started:
        assert loop.flush(timeout=10)
        background._loops.remove(loop)  # keep close_connections() to the app's own loops


def test_wakes_during_a_run_share_the_next_one(loops):
    runs = []
    release = threading.Event()

    def work():
        runs.append(threading.current_thread().name)
        release.wait(timeout=10)

    loop = loops(work)
    for _ in range(100):
        loop.wake()
    release.set()
    assert loop.flush(timeout=10)
    assert 1 <= len(runs) <= 2
    assert set(runs) == {"test-loop"}


def test_flush_waits_for_the_pending_run(loops):
    done = []
    loop = loops(lambda: done.append(1), coalesce=0.05)
    loop.wake()
    assert done == []  # still coalescing
    assert loop.flush(timeout=10)
    assert done == [1]


def test_a_failing_run_is_logged_and_the_loop_goes_on(loops, caplog):
    calls = []

    def work():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")

    loop = loops(work)
    with caplog.at_level(logging.ERROR, logger="django_webhooks.background"):
        loop.wake()
        assert loop.flush(timeout=10)
        loop.wake()
        assert loop.flush(timeout=10)
    assert calls == [1, 1]
    assert "boom" in caplog.text


def test_release_runs_on_idle_after_the_pending_work_and_no_extra_run(loops):
    order = []
    loop = loops(lambda: order.append("work"), on_idle=lambda: order.append(threading.current_thread().name))
    loop.wake()
    assert loop.release(timeout=10)
    assert order == ["work", "test-loop"]
    assert loop.release(timeout=10)
    assert order == ["work", "test-loop", "test-loop"]


def test_on_idle_runs_after_a_quiet_period(loops):
    idle = threading.Event()
    loop = loops(lambda: None, on_idle=idle.set, idle_after=0.05)
    loop.wake()
    assert idle.wait(timeout=10)


def test_the_test_environment_is_detected():
    assert in_test_environment()  # pytest-django set it up


@pytest.mark.django_db
def test_only_a_private_in_memory_sqlite_database_is_not_shared(monkeypatch):
    assert shared_between_threads("default")
    if connection.vendor == "sqlite":
        monkeypatch.setitem(connection.settings_dict, "NAME", ":memory:")
        assert not shared_between_threads("default")
        monkeypatch.setitem(connection.settings_dict, "NAME", "file:memorydb_default?mode=memory&cache=shared")
        assert shared_between_threads("default")

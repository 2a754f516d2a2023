"""Free prometheus_client's locks in a forked child.

prometheus_client guards its values with plain ``threading.Lock`` objects: one per labelled
metric (taken while a child is created), one per value in a single process, and one for every
value of the process in multiprocess mode (``values.MultiProcessValue``). A process that forks
while another of its threads holds one (a lane's sender thread recording an attempt, say) hands
the child a lock nobody will ever release, and the child's first increment hangs for good.

:func:`protect` registers an ``os.register_at_fork`` handler that re-initialises those locks in
the child, as the standard library does for its own (``threading``, ``logging``): the child has
one thread, so no lock can be rightly held there. The parent is left alone. What the locks
guarded is safe to reuse: the fork happens while the forking thread holds the GIL, so the
dictionaries and lists prometheus_client keeps are whole; in multiprocess mode the child drops
the parent's files and values on its first use (it sees a new pid) and starts its own; in a
single process the child's copies of the parent's counts are the parent's, not the child's,
whatever their last digit.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

_LOCK_TYPE = type(threading.Lock())
#: The metrics protected so far (our own, created once per process).
_protected: list[Any] = []
_registered = False


def multiprocess_lock() -> Any | None:
    """The lock every value of this process shares in multiprocess mode, None in a single process.

    prometheus_client keeps it in a closure of its value class; this reads it from there and
    returns None if a future version keeps it elsewhere (the fork test then fails loudly).
    """
    from prometheus_client import values

    value_class = values.ValueClass
    if not getattr(value_class, "_multiprocess", False):
        return None
    inc = value_class.inc
    cells = dict(zip(inc.__code__.co_freevars, inc.__closure__ or (), strict=True))
    cell = cells.get("lock")
    lock = cell.cell_contents if cell is not None else None
    return lock if isinstance(lock, _LOCK_TYPE) else None


def metric_locks(metric: Any) -> list[Any]:
    """A metric's own lock and the per-value locks of it and its children (single process)."""
    locks = [getattr(metric, "_lock", None)]
    for child in (metric, *getattr(metric, "_metrics", {}).values()):
        for value in (getattr(child, "_value", None), getattr(child, "_sum", None), *getattr(child, "_buckets", ())):
            locks.append(getattr(value, "_lock", None))
    return [lock for lock in locks if isinstance(lock, _LOCK_TYPE)]


def _reinit_in_child() -> None:
    locks = [lock for metric in _protected for lock in metric_locks(metric)]
    shared = multiprocess_lock()
    if shared is not None:
        locks.append(shared)
    for lock in locks:
        lock._at_fork_reinit()  # CPython's own after-fork reset (threading, logging use it)


def protect(metrics: Iterable[Any]) -> None:
    """Free ``metrics``' locks (and the multiprocess lock) in every child this process forks."""
    global _registered
    _protected.extend(metrics)
    if not _registered:
        os.register_at_fork(after_in_child=_reinit_in_child)
        _registered = True

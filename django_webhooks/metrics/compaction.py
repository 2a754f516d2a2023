"""The multiprocess directory: merged at scrape time, dead processes' files folded into one.

In multiprocess mode each process (web worker, django-q2 worker) writes its counters and
histograms into ``<type>_<pid>.db`` under ``PROMETHEUS_MULTIPROC_DIR``. A dead process's counts
must stay (counters never go down), but django-q2 recycles workers and each new one adds files,
so a scrape would read more files every day. :func:`compact` therefore folds the counter,
histogram and summary files of processes that no longer run into one ``<type>_compacted.db``
each, and removes the dead processes' ``live*`` gauge files (``mark_process_dead``).

Crash safety: the merged files are written beside the old ones under names the scrape does not
read, then a journal names the replacements and the files they absorb, then the replacements
are made and the absorbed files removed. A compaction that died half-way is finished by the next
one (the journal is replayed), so no count is lost or counted twice. Scrapes and compactions of
the same directory take a file lock (shared, exclusive), so a scrape never sees a half-done step.

"Dead" is decided with ``kill(pid, 0)``: the scraping process must see the workers' process ids
(same machine and PID namespace; see docs/monitoring.md).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

COMPACTED_TYPES = ("counter", "histogram", "summary")
LOCK_NAME = ".django_webhooks.lock"
JOURNAL_NAME = "django_webhooks_compaction.json"
COMPACTED_SUFFIX = "compacted"
#: Merged files being written: not ``*.db``, so a scrape does not read them.
PENDING_SUFFIX = ".db.pending"


@contextmanager
def locked(path: str, *, exclusive: bool) -> Iterator[None]:
    """Hold the directory's lock (exclusive: compaction; shared: reading the files)."""
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # releases the lock


def file_pid(filename: str) -> int | None:
    """The process id in ``counter_123.db`` / ``gauge_livesum_123.db``; None for compacted files."""
    stem = os.path.basename(filename).removesuffix(".db")
    _, _, pid = stem.rpartition("_")
    return int(pid) if pid.isdigit() else None


def is_running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it runs, as another user
        return True
    return True


def _write_merged(target: str, files: list[str]) -> None:
    """Write the sum of ``files`` (one type) into ``target``, in prometheus_client's file format."""
    from prometheus_client.mmap_dict import MmapedDict, mmap_key
    from prometheus_client.multiprocess import MultiProcessCollector

    merged = MmapedDict(target)
    try:
        for metric in MultiProcessCollector.merge(files, accumulate=False):
            for sample in metric.samples:
                labels = sample.labels
                key = mmap_key(metric.name, sample.name, list(labels), list(labels.values()), metric.documentation)
                merged.write_value(key, sample.value, 0.0)
    finally:
        merged.close()


def _replay(path: str) -> None:
    """Finish the compaction a journal describes (idempotent), then forget it."""
    journal = os.path.join(path, JOURNAL_NAME)
    try:
        with open(journal) as handle:
            plan: dict[str, Any] = json.load(handle)
    except FileNotFoundError:
        plan = {"replace": [], "remove": []}
    for pending, final in plan["replace"]:
        if os.path.exists(pending):
            os.replace(pending, final)
    for name in plan["remove"]:
        with suppress(FileNotFoundError):
            os.remove(name)
    # Merged files written before a crash that came before their journal: not applied, not needed.
    for stray in glob.glob(os.path.join(path, f"*{PENDING_SUFFIX}")):
        os.remove(stray)
    with suppress(FileNotFoundError):
        os.remove(journal)


def _write_journal(path: str, plan: dict[str, list]) -> None:
    journal = os.path.join(path, JOURNAL_NAME)
    with open(journal + ".tmp", "w") as handle:
        json.dump(plan, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(journal + ".tmp", journal)


def compact(path: str) -> int:
    """Fold the files of dead processes under ``path``; returns how many process files went."""
    from prometheus_client.multiprocess import mark_process_dead

    with locked(path, exclusive=True):
        _replay(path)
        dead: dict[str, list[str]] = {kind: [] for kind in COMPACTED_TYPES}
        dead_pids: set[int] = set()
        for filename in glob.glob(os.path.join(path, "*.db")):
            pid = file_pid(filename)
            if pid is None or is_running(pid):
                continue
            dead_pids.add(pid)
            kind = os.path.basename(filename).partition("_")[0]
            if kind in dead:
                dead[kind].append(filename)
        for pid in dead_pids:
            mark_process_dead(pid, path)
        plan: dict[str, list] = {"replace": [], "remove": []}
        for kind, files in dead.items():
            if not files:
                continue
            final = os.path.join(path, f"{kind}_{COMPACTED_SUFFIX}.db")
            pending = final.removesuffix(".db") + PENDING_SUFFIX
            _write_merged(pending, [final, *files] if os.path.exists(final) else files)
            plan["replace"].append([pending, final])
            plan["remove"].extend(files)
        if plan["remove"]:
            _write_journal(path, plan)
            _replay(path)
        return len(plan["remove"])


class ProcessFilesCollector:
    """Every process's counters and histograms under ``path``, merged (after a compaction)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Any]:
        from prometheus_client.multiprocess import MultiProcessCollector

        compact(self.path)
        with locked(self.path, exclusive=False):
            files = glob.glob(os.path.join(self.path, "*.db"))
            return list(MultiProcessCollector.merge(files, accumulate=True))

"""Folding the files of dead processes: counts survive, once, even across a crash half-way."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from django_webhooks.metrics import compaction

RECORD = textwrap.dedent(
    """
    import sys
    from prometheus_client import Counter, Gauge, Histogram
    Counter("jobs", "Jobs.", ["kind"]).labels(sys.argv[1]).inc(int(sys.argv[2]))
    Histogram("took_seconds", "Took.", buckets=(1, 5)).observe(float(sys.argv[3]))
    Gauge("busy", "Busy.", multiprocess_mode="livesum").set(1)
    """
)


def record_in_a_process(directory, kind: str, count: int, took: float) -> None:
    """A process that records and exits: its files stay behind, its pid is dead."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(directory)}
    subprocess.run([sys.executable, "-c", RECORD, kind, str(count), str(took)], env=env, check=True, timeout=60)


def totals(directory) -> dict:
    files = [str(path) for path in directory.glob("*.db")]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in MultiProcessCollector.merge(files, accumulate=True)
        for sample in metric.samples
        if "pid" not in sample.labels
    }


def counts(found: dict) -> dict:
    """The counters and histograms (a dead process's ``live*`` gauge is meant to go)."""
    return {key: value for key, value in found.items() if key[0] != "busy"}


@pytest.fixture
def directory(tmp_path):
    record_in_a_process(tmp_path, "a", 3, 0.5)
    record_in_a_process(tmp_path, "b", 2, 3.0)
    record_in_a_process(tmp_path, "a", 4, 9.0)
    return tmp_path


def test_dead_processes_are_folded_into_one_file_per_type_with_every_count(directory):
    before = totals(directory)
    assert before[("jobs_total", (("kind", "a"),))] == 7
    assert before[("busy", ())] == 3
    assert compaction.compact(str(directory)) == 6  # a counter and a histogram file each
    assert sorted(path.name for path in directory.glob("*.db")) == ["counter_compacted.db", "histogram_compacted.db"]
    assert totals(directory) == counts(before)  # and the dead processes' live gauge is gone
    # Folding again, with more dead processes, adds to the folded file.
    record_in_a_process(directory, "b", 5, 0.1)
    assert compaction.compact(str(directory)) == 2
    after = totals(directory)
    assert after[("jobs_total", (("kind", "b"),))] == 7
    assert after[("took_seconds_count", ())] == 4
    assert after[("took_seconds_bucket", (("le", "1.0"),))] == 2


def test_the_files_of_a_running_process_are_left_alone(tmp_path):
    from prometheus_client.mmap_dict import MmapedDict

    mine = tmp_path / f"counter_{os.getpid()}.db"
    MmapedDict(str(mine)).close()
    assert compaction.compact(str(tmp_path)) == 0
    assert mine.exists()


def test_a_compaction_that_died_after_its_journal_is_finished_by_the_next(directory, monkeypatch):
    before = counts(totals(directory))
    replay = compaction._replay
    calls = []

    def crash_after_the_journal(path):
        calls.append(path)
        if len(calls) == 2:  # the replay that applies the journal just written
            raise KeyboardInterrupt
        replay(path)

    monkeypatch.setattr(compaction, "_replay", crash_after_the_journal)
    with pytest.raises(KeyboardInterrupt):
        compaction.compact(str(directory))
    monkeypatch.setattr(compaction, "_replay", replay)
    assert (directory / compaction.JOURNAL_NAME).exists()
    collected = compaction.ProcessFilesCollector(str(directory)).collect()
    found = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in collected
        for sample in metric.samples
        if "pid" not in sample.labels
    }
    assert found == before
    assert not (directory / compaction.JOURNAL_NAME).exists()
    assert not list(directory.glob(f"*{compaction.PENDING_SUFFIX}"))

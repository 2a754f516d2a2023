"""A backlog of due deliveries at scale: ``bench.run --only backlog --backlog 100000,1000000``.

For each size, in a fresh database: seed that many due deliveries to one subscription
(set-based SQL, see scenarios.backlog), time what a delivery task asks the database on each turn
against it (scenarios.claim_cost: ``claim_lanes``, ``due_count``, ``next_due``), then start a
cluster (2 workers), sweep once and measure the drain rate over a fixed window: from the first
request the receiver answers to the ``window_deliveries``-th, or ``window_seconds`` later,
whichever comes first, so a million need not drain (at ~2,000/s it would take ten minutes), and
every size is measured over the same stretch. The largest RSS of any cluster process is sampled
throughout, and the CPU time of the cluster's processes is read when the first answer is seen and
at the end of the window: the workers' CPU per delivery with nothing else running (no producer),
to set beside the end-to-end run's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench.cpu_split import cpu_seconds
from bench.harness import Cluster, backend_env, fresh_database, step, sweep
from bench.nginx import Nginx

#: How long the first request may take to arrive after the sweep (cluster start, first claim).
STARTUP_TIMEOUT = 120.0


@dataclass
class BacklogRun:
    size: int
    seed_seconds: float
    #: scenarios.claim_cost's figures.
    claim: dict
    #: Deliveries answered in the window, and its length in seconds.
    window_deliveries: int
    window_seconds: float
    #: From the sweep to the first answered request.
    startup_seconds: float
    peak_rss_mb: float
    #: CPU milliseconds of the cluster's processes per delivery answered during the window.
    worker_cpu_ms: float

    @property
    def rate(self) -> float:
        return (self.window_deliveries - 1) / self.window_seconds if self.window_seconds else 0.0


def drain_window(
    nginx: Nginx, target: int, seconds: float, cluster: Cluster | None = None
) -> tuple[int, float, float, float]:
    """Wait for ``target`` answers or ``seconds`` after the first; (answers, first time, window
    end, ``cluster``'s CPU ms per answer counted between the first one seen and the end)."""
    startup_deadline = time.monotonic() + STARTUP_TIMEOUT
    first = None
    cpu_from = (0, 0.0)
    while True:
        answered = nginx.count()
        if answered >= target:
            break
        if first is None and answered:
            first = min(request.at for request in nginx.answered())
            cpu_from = (nginx.count(), cpu_seconds(cluster._pids()) if cluster else 0.0)
        if first is None and time.monotonic() > startup_deadline:
            raise RuntimeError(f"no delivery arrived within {STARTUP_TIMEOUT:.0f} s")
        if first is not None and time.time() - first >= seconds:
            break
        time.sleep(0.2)
    cpu = cpu_seconds(cluster._pids()) if cluster else 0.0
    time.sleep(0.3)  # nginx flushes its log every 100 ms
    times = sorted(request.at for request in nginx.answered())
    per_delivery = (cpu - cpu_from[1]) * 1000 / max(1, len(times) - cpu_from[0]) if cluster else 0.0
    first = times[0]
    if len(times) >= target:
        return target, first, times[target - 1], per_delivery
    end = first + seconds
    return sum(1 for t in times if t <= end), first, end, per_delivery


def backlog(
    backend: str, nginx: Nginx, url: str, size: int, window_seconds: float, window_deliveries: int
) -> BacklogRun:
    env = backend_env(backend)
    fresh_database(backend)
    step(env, "prepare", url, 1)
    seeded = step(env, "backlog", size, timeout=7200)
    claim = step(env, "claim_cost", 20)
    nginx.reset_log()
    with Cluster(env) as cluster:
        started = time.time()
        sweep(env).wait()
        answered, first, end, cpu_ms = drain_window(nginx, min(size, window_deliveries), window_seconds, cluster)
        rss = cluster.peak_rss_mb
    return BacklogRun(size, seeded["seconds"], claim, answered, end - first, first - started, rss, cpu_ms)

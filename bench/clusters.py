"""Several machines on one database: ``bench.run --only clusters --backends postgres``.

Separate ``qcluster`` processes (1 worker each) stand in for machines: same PostgreSQL database,
same Redis queue, a backlog spread over ``SUBSCRIPTIONS`` subscriptions. Each cluster sends with
its own ``USER_AGENT`` (bench.settings' BENCH_WEBHOOKS), which the receiver logs, so the
deliveries of each are counted; each runs ``webhooks_sweep`` once at the start, as each machine's
cron or schedule would. Then the receiver's log is checked against the database
(scenarios.check_claims): every ``webhook-id`` answered exactly as often as its delivery has
attempts, and while every endpoint is healthy that is once: claims were disjoint. The same
backlog with one cluster alone, in the same run, is the comparison.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from bench.harness import Cluster, backend_env, fresh_database, step, sweep, wait_for_acks, wait_until_final
from bench.nginx import Nginx

SUBSCRIPTIONS = 100


@dataclass
class ClustersRun:
    clusters: int
    deliveries: int
    seconds: float
    #: scenarios.check_claims' figures.
    check: dict

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds

    def per_cluster(self) -> list[int]:
        agents = self.check["by_user_agent"]
        return [agents.get(user_agent(i), 0) for i in range(self.clusters)]

    def disjoint(self) -> bool:
        c = self.check
        return (
            c["succeeded"] == c["deliveries"] == self.deliveries
            and c["attempt_rows"] == c["deliveries"]
            and not c["attempted_more_than_once"]
            and not c["ids_logged_more_than_once"]
            and not c["log_differs_from_attempts"]
            and not c["ids_unknown"]
        )


def user_agent(index: int) -> str:
    return f"bench-cluster-{index + 1}"


def clusters(backend: str, nginx: Nginx, url: str, count: int, n_clusters: int) -> ClustersRun:
    env = backend_env(backend)
    fresh_database(backend)
    step(env, "prepare", url, SUBSCRIPTIONS)
    step(env, "backlog", count, timeout=7200)
    envs = [
        backend_env(backend, BENCH_WORKERS="1", BENCH_WEBHOOKS=json.dumps({"USER_AGENT": user_agent(i)}))
        for i in range(n_clusters)
    ]
    nginx.reset_log()
    with contextlib.ExitStack() as stack:
        for cluster_env in envs:
            stack.enter_context(Cluster(cluster_env))
        for sweeping in [sweep(cluster_env) for cluster_env in envs]:
            sweeping.wait()
        last = wait_for_acks(nginx, count, timeout=max(300, count / 50))
        wait_until_final(env)
    first = min(request.at for request in nginx.answered())
    return ClustersRun(n_clusters, count, last - first, step(env, "check_claims", nginx.access_log))

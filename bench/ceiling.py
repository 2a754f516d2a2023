"""The ceiling: a bare keep-alive requests.Session loop POSTing signed 1 KB bodies to nginx."""

from __future__ import annotations

import json
import multiprocessing
import time

import requests

from django_webhooks.signing import generate_secret, webhook_headers

BODY = json.dumps({"type": "order.created", "timestamp": "2026-01-01T00:00:00Z", "data": {"pad": "x" * 940}}).encode()


def _worker(url: str, count: int, queue) -> None:
    secret = generate_secret()
    session = requests.Session()
    start = time.perf_counter()
    for i in range(count):
        headers = webhook_headers(f"msg_{i}", int(time.time()), BODY, [secret])
        headers["Content-Type"] = "application/json"
        response = session.post(url, data=BODY, headers=headers, timeout=(5, 15), allow_redirects=False)
        assert response.status_code == 200
    queue.put(time.perf_counter() - start)


def ceiling(url: str, processes: int, per_process: int) -> float:
    """Deliveries per second with ``processes`` processes sending ``per_process`` each."""
    queue = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=_worker, args=(url, per_process, queue)) for _ in range(processes)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    return processes * per_process / elapsed


if __name__ == "__main__":
    from bench.nginx import Nginx

    with Nginx() as url:
        for n in (1, 2):
            print(f"ceiling, {n} process(es): {ceiling(url, n, 5000):,.0f} deliveries/s")

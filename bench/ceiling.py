"""The ceiling: a bare keep-alive loop POSTing signed 1 KB bodies to nginx, with each HTTP client.

Every client sends the same body with the same signature headers, the same timeouts (5 s
connect, 15 s read), no redirects followed and no retries, over one kept-alive connection per
process: what is left is the client's own cost. ``python -m bench.ceiling`` prints them all;
bench.run measures them in the same run as the figures it divides by them, and every ratio it
prints is against :meth:`Ceilings.reference`, the fastest client at that number of processes.
"""

from __future__ import annotations

import json
import multiprocessing
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests
import urllib3

from django_webhooks.signing import generate_secret, webhook_headers

BODY = json.dumps({"type": "order.created", "timestamp": "2026-01-01T00:00:00Z", "data": {"pad": "x" * 940}}).encode()
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0

#: A client: given the URL, a function that POSTs (body, headers) to it and returns the status.
Post = Callable[[bytes, dict[str, str]], int]


def requests_session(url: str) -> Post:
    session = requests.Session()

    def post(body: bytes, headers: dict[str, str]) -> int:
        response = session.post(
            url, data=body, headers=headers, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False
        )
        return response.status_code

    return post


def urllib3_pool(url: str) -> Post:
    parts = urlsplit(url)
    pool = urllib3.HTTPConnectionPool(
        parts.hostname,
        parts.port,
        maxsize=1,
        retries=False,
        timeout=urllib3.Timeout(connect=CONNECT_TIMEOUT, read=READ_TIMEOUT),
    )
    path = parts.path or "/"

    def post(body: bytes, headers: dict[str, str]) -> int:
        return pool.urlopen("POST", path, body=body, headers=headers, redirect=False, retries=False).status

    return post


#: Every client measured, by the name the report gives it.
CLIENTS: dict[str, Callable[[str], Post]] = {
    "requests.Session": requests_session,
    "urllib3.HTTPConnectionPool": urllib3_pool,
}


def _worker(client: str, url: str, count: int) -> None:
    post = CLIENTS[client](url)
    secret = generate_secret()
    for i in range(count):
        headers = webhook_headers(f"msg_{i}", int(time.time()), BODY, [secret])
        headers["Content-Type"] = "application/json"
        status = post(BODY, headers)
        assert status == 200, status


def ceiling(url: str, processes: int, per_process: int, client: str = "requests.Session") -> float:
    """Deliveries per second with ``processes`` processes of ``client`` sending ``per_process`` each."""
    procs = [multiprocessing.Process(target=_worker, args=(client, url, per_process)) for _ in range(processes)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    if any(proc.exitcode for proc in procs):
        raise RuntimeError(f"a {client} ceiling process failed")
    return processes * per_process / elapsed


@dataclass
class Ceilings:
    """The ceilings measured in one run: deliveries/s by (client, processes)."""

    rates: dict[tuple[str, int], float] = field(default_factory=dict)

    def reference(self, processes: int) -> tuple[str, float] | None:
        """The ceiling a figure using ``processes`` processes is divided by: the fastest client's."""
        measured = [(rate, client) for (client, n), rate in self.rates.items() if n == processes]
        if not measured:
            return None
        rate, client = max(measured)
        return client, rate

    def ratio(self, rate: float, processes: int) -> str:
        """``rate`` as a fraction of :meth:`reference`, for a report note ("" if not measured)."""
        ref = self.reference(processes)
        if ref is None:
            return ""
        client, ceiling_rate = ref
        return f"{rate / ceiling_rate:.2f}x {processes}-process ceiling ({client})"


def measure(url: str, per_process: int, processes: tuple[int, ...] = (1, 2)) -> Ceilings:
    """Every client at every number of processes, one after another."""
    ceilings = Ceilings()
    for n in processes:
        for client in CLIENTS:
            ceilings.rates[client, n] = ceiling(url, n, per_process, client)
    return ceilings


if __name__ == "__main__":
    from bench.nginx import Nginx

    with Nginx() as url:
        measured = measure(url, 5000)
    for (client, n), rate in measured.rates.items():
        print(f"ceiling, {client}, {n} process(es): {rate:,.0f} deliveries/s")

"""Benchmark steps that run inside Django (``python -m bench.scenarios STEP ...``).

bench/run.py starts these in subprocesses with the settings of one backend (bench/settings.py)
and reads the JSON object each prints on its last line.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from django_webhooks.models import Delivery, Event, Subscription  # noqa: E402
from example_project.shop.models import Customer, Order  # noqa: E402


def _customer() -> Customer:
    user, _ = get_user_model().objects.get_or_create(username="bench")
    customer, _ = Customer.objects.get_or_create(user=user, name="Bench customer")
    return customer


def prepare(url: str, subscriptions: int = 1, slow_url: str = "", slow: int = 0) -> dict:
    """Migrate a fresh database and subscribe the bench customer's owner to order events."""
    call_command("migrate", verbosity=0)
    owner = str(_customer().user_id)
    subs = [Subscription(owner_id=owner, url=url, event_types=["order.*"]) for _ in range(int(subscriptions))]
    subs += [Subscription(owner_id=owner, url=slow_url, event_types=["order.*"]) for _ in range(int(slow))]
    Subscription.objects.bulk_create(subs, batch_size=1000)
    return {"subscriptions": len(subs)}


def produce(count: int, interval: float = 0.0, per_transaction: int = 1) -> dict:
    """Create ``count`` orders through the ORM (the binding fires for each), ``per_transaction`` per commit.

    One order per transaction is a web app's write path; one process doing that makes ~600
    orders/s here, less than the pipeline delivers, so the throughput runs commit 100 orders
    at a time (an import, or many concurrent requests) to keep the producer out of the figure.
    """
    customer = _customer()
    start = time.time()
    count, per_transaction = int(count), max(1, int(per_transaction))
    for first in range(0, count, per_transaction):
        # One order per transaction is plain autocommit, as in a view without ATOMIC_REQUESTS.
        with transaction.atomic() if per_transaction > 1 else contextlib.nullcontext():
            for i in range(first, min(count, first + per_transaction)):
                Order.objects.create(customer=customer, number=f"B-{i}", total="10.00", note="x" * 800)
        if interval:
            time.sleep(float(interval))
    return {"started": start, "finished": time.time()}


def backlog(count: int) -> dict:
    """Put ``count`` due deliveries in the table at once, as after an outage (one event each)."""
    from django_webhooks.delivery.fanout import build_body

    sub = Subscription.objects.first()
    now = timezone.now()
    made = 0
    while made < int(count):
        n = min(5000, int(count) - made)
        with transaction.atomic():
            events = Event.objects.bulk_create(
                [
                    Event(
                        event_type="order.created", payload={"id": made + i, "note": "x" * 800}, owner_id=sub.owner_id
                    )
                    for i in range(n)
                ]
            )
            for event in events:
                event.body = build_body(event, thin=False)
                event.fanned_out_at = now
            Event.objects.bulk_update(events, ["body", "fanned_out_at"], batch_size=1000)
            Delivery.objects.bulk_create(
                [Delivery(event=event, subscription=sub, next_attempt_at=now) for event in events], batch_size=1000
            )
        made += n
    return {"deliveries": made}


def fanout(subscriptions: int) -> dict:
    """Time fanning one event out to ``subscriptions`` subscriptions; report this process's peak RSS."""
    from django_webhooks import send_event
    from django_webhooks.delivery.fanout import fan_out_pending

    owner = _customer().user_id
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with transaction.atomic():
        send_event("order.created", {"id": 1, "note": "x" * 800}, owner=owner)
    start = time.perf_counter()
    fan_out_pending()
    elapsed = time.perf_counter() - start
    made = Delivery.objects.count()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": elapsed, "deliveries": made, "peak_rss_mb": peak / 1024, "rss_before_mb": before / 1024}


def status() -> dict:
    """Delivery counts by status."""
    from django.db.models import Count

    rows = Delivery.objects.values_list("status").annotate(n=Count("id"))
    return dict(rows)


def latencies() -> dict:
    """message id -> event creation time (Unix seconds), to pair with the receiver's log."""
    rows = Delivery.objects.values_list("message_id", "event__created_at")
    return {msg: created.timestamp() for msg, created in rows}


if __name__ == "__main__":
    step, *args = sys.argv[1:]
    result = globals()[step](*args)
    print(json.dumps(result))

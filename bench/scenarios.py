"""Benchmark steps that run inside Django (``python -m bench.scenarios STEP ...``).

bench/run.py starts these in subprocesses with the settings of one backend (bench/settings.py)
and reads the JSON object each prints on its last line.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
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


#: Deliveries copied per statement (and transaction) when seeding a backlog.
SEED_CHUNK = 100_000
#: A fresh message id per copied delivery, in SQL.
MESSAGE_ID_SQL = {
    "postgresql": "'msg_' || replace(gen_random_uuid()::text, '-', '')",
    "sqlite": "'msg_' || lower(hex(randomblob(16)))",
}


def backlog(count: int) -> dict:
    """Put ``count`` due deliveries in the table at once, as after an outage (one event each).

    They go round robin to the subscriptions ``prepare`` made. One event and its delivery are
    made through the ORM; the others are copies of those two rows (with their own ids and
    message ids) made with ``INSERT ... SELECT`` over a generated series, ``SEED_CHUNK`` per
    statement: a million takes a minute or two, not the half hour the ORM would. Then the
    tables are analyzed, as autovacuum would do after such a load.
    """
    from django_webhooks.delivery.fanout import build_body

    started = time.perf_counter()
    count = int(count)
    subs = list(Subscription.objects.order_by("id").values_list("id", "owner_id"))
    now = timezone.now()
    with transaction.atomic():
        event = Event.objects.create(
            event_type="order.created", payload={"id": 0, "note": "x" * 800}, owner_id=subs[0][1]
        )
        event.body = build_body(event, thin=False)
        event.fanned_out_at = now
        event.save(update_fields=["body", "fanned_out_at"])
        template = Delivery.objects.create(event=event, subscription_id=subs[0][0], next_attempt_at=now)
    vendor = connection.vendor
    q = connection.ops.quote_name
    events, deliveries = q(Event._meta.db_table), q(Delivery._meta.db_table)
    event_columns = ", ".join(q(f.column) for f in Event._meta.concrete_fields if not f.primary_key)
    template_columns = ", ".join(f"t.{q(f.column)}" for f in Event._meta.concrete_fields if not f.primary_key)
    replaced = {"event_id": "e.id", "subscription_id": "s.id", "message_id": MESSAGE_ID_SQL[vendor]}
    delivery_fields = [f.column for f in Delivery._meta.concrete_fields if not f.primary_key]
    delivery_columns = ", ".join(q(c) for c in delivery_fields)
    delivery_values = ", ".join(replaced.get(c, f"t.{q(c)}") for c in delivery_fields)
    if vendor == "postgresql":
        copy_events = (
            f"INSERT INTO {events} ({event_columns}) SELECT {template_columns} "
            f"FROM {events} t CROSS JOIN generate_series(1, %s) WHERE t.id = %s"
        )
    else:
        copy_events = (
            "WITH RECURSIVE series(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM series WHERE i < %s) "
            f"INSERT INTO {events} ({event_columns}) SELECT {template_columns} "
            f"FROM {events} t CROSS JOIN series WHERE t.id = %s"
        )
    copy_deliveries = (
        f"INSERT INTO {deliveries} ({delivery_columns}) SELECT {delivery_values} FROM {events} e "
        f"JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM {q(Subscription._meta.db_table)}) s "
        f"ON s.k = e.id %% {len(subs)} CROSS JOIN {deliveries} t WHERE e.id > %s AND t.id = %s"
    )
    made = 1
    with connection.cursor() as cursor:
        while made < count:
            n = min(SEED_CHUNK, count - made)
            with transaction.atomic():
                cursor.execute(f"SELECT MAX(id) FROM {events}")
                (last,) = cursor.fetchone()
                cursor.execute(copy_events, [n, event.pk])
                cursor.execute(copy_deliveries, [last, template.pk])
            made += n
        seeded = time.perf_counter() - started
        if vendor == "postgresql":
            cursor.execute(f"VACUUM ANALYZE {events}, {deliveries}")
        else:
            cursor.execute("ANALYZE")
    return {"deliveries": Delivery.objects.count(), "seconds": seeded, "with_analyze": time.perf_counter() - started}


def claim_cost(rounds: int = 20) -> dict:
    """Time what a delivery task asks the database on its turns, against the backlog in place.

    ``claim_lanes(1)`` (one lane claimed; its deliveries are handed back untouched after each
    round, untimed), ``due_count()`` and ``next_due()``, ``rounds`` times each. Per call: the
    median and worst milliseconds, its statements and their time in the database, its slowest
    statement's kind and median time, and on PostgreSQL the ``EXPLAIN (ANALYZE, BUFFERS)`` of
    the slowest statement seen (run again in a transaction that is rolled back).
    """
    from bench.statements import statement_kind
    from django_webhooks.delivery.claiming import claim_lanes, due_count, next_due, release_unsent

    statements: list[tuple[float, str, str, object]] = []

    def timed(execute, sql, params, many, context):
        begun = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((time.perf_counter() - begun, statement_kind(sql, many), sql, params))

    claimed: list[int] = []
    calls = {
        "claim_lanes(1)": lambda: claim_lanes(1),
        "due_count()": due_count,
        "next_due()": lambda: next_due(timezone.now(), 60.0),
    }
    results = {}
    for name, call in calls.items():
        times, in_db, counts, slowest = [], [], [], []
        worst: tuple[float, str, str, object] = (0.0, "", "", None)
        for _ in range(int(rounds)):
            statements.clear()
            with connection.execute_wrapper(timed):
                begun = time.perf_counter()
                result = call()
                times.append(time.perf_counter() - begun)
            in_db.append(sum(entry[0] for entry in statements))
            counts.append(len(statements))
            top = max(statements, default=(0.0, "", "", None), key=lambda entry: entry[0])
            slowest.append(top)
            worst = max(worst, top, key=lambda entry: entry[0])
            if name.startswith("claim_lanes"):
                claimed.append(sum(len(lane.deliveries) for lane in result))
                for lane in result:
                    release_unsent(lane, lane.deliveries)
        kinds = Counter(entry[1] for entry in slowest)
        plan: list[str] = []
        if connection.vendor == "postgresql" and worst[2]:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + worst[2], worst[3])
                plan = [row[0] for row in cursor.fetchall()]
                transaction.set_rollback(True)
        results[name] = {
            "median_ms": statistics.median(times) * 1000,
            "max_ms": max(times) * 1000,
            "db_ms": statistics.median(in_db) * 1000,
            "statements": statistics.median(counts),
            "slowest": {
                "kind": kinds.most_common(1)[0][0],
                "median_ms": statistics.median(entry[0] for entry in slowest) * 1000,
            },
            "plan": plan,
        }
    return {"calls": results, "claimed_per_round": statistics.median(claimed)}


def check_claims(log_path: str) -> dict:
    """Compare the receiver's log with the attempts recorded: was any delivery sent twice?"""
    from bench.nginx import read_log
    from django_webhooks.models import DeliveryAttempt, DeliveryStatus

    logged = read_log(Path(log_path))
    per_id = Counter(request.webhook_id for request in logged)
    message_ids = dict(Delivery.objects.values_list("id", "message_id"))
    attempts = Counter(
        {
            message_ids[row["delivery_id"]]: row["n"]
            for row in DeliveryAttempt.objects.values("delivery_id").annotate(n=Count("id")).order_by()
        }
    )
    return {
        "deliveries": len(message_ids),
        "succeeded": Delivery.objects.filter(status=DeliveryStatus.SUCCEEDED).count(),
        "attempt_rows": sum(attempts.values()),
        "attempted_more_than_once": sum(1 for n in attempts.values() if n > 1),
        "requests_logged": len(logged),
        "ids_logged_more_than_once": sum(1 for n in per_id.values() if n > 1),
        "log_differs_from_attempts": sum(1 for m in message_ids.values() if per_id[m] != attempts[m]),
        "ids_unknown": len(set(per_id) - set(message_ids.values())),
        "by_user_agent": dict(Counter(request.user_agent for request in logged)),
    }


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

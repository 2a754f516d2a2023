"""Write-path benchmark: what the ``order.created`` binding adds to ``Order.objects.create()``.

Runs on SQLite, and on PostgreSQL + Redis when DATABASE_URL and REDIS_URL are set::

    .venv/bin/python bench/write_path.py
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/9 \\
        .venv/bin/python bench/write_path.py

Creates its own database (the test database of the selected connection) and drops it at the
end. Bare, floor and bound creates are interleaved one by one (in an order that rotates, and with
the binding registered only for the bound ones), so all three see the same machine noise at the
same moments; the ratio is bound median / bare median. No worker runs: the write path only records the
event and hands over to the broker, whose queue the benchmark empties when done.

Two modes: autocommit (the event is inserted in its own statement right after the change) and
``atomic()`` around each create (the event shares the change's transaction, as with
``ATOMIC_REQUESTS``). Each mode also reports its floor: the bare create followed by one
hand-written event INSERT with no library code (no payload, checks or handoff), the cost of the
extra statement alone. Then the handoff: tasks on the broker after 2,000 autocommit saves with no
worker running (target: at most 20).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
os.environ.setdefault("WEBHOOKS_LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG records every query; production does not
QUEUE_NAME = "dwh-bench-write-path"


def setup_django(sqlite_path: str) -> None:
    import django
    from django.conf import settings

    django.setup()
    from django.db import connection

    database = connection.settings_dict
    database["TEST"]["NAME"] = sqlite_path if connection.vendor == "sqlite" else "dwh_bench_write_path"
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "QUEUE": QUEUE_NAME}
    # django-q2 logs one INFO line per enqueued task; a production setup would not print those.
    logging.getLogger("django-q").setLevel(logging.WARNING)


#: (label, wrap each create in atomic())
MODES = [("autocommit", False), ("atomic() per create", True)]


def time_one(customer, number: int, atomic: bool, floor: bool = False) -> float:
    """Seconds of one create; with ``floor``, followed by a fixed hand-written event INSERT."""
    from django.db import transaction
    from django.utils import timezone

    from django_webhooks.capture import outbox
    from example_project.shop.models import Order

    row = outbox.EventRow("bench.floor", '{"number":"B"}', None, timezone.now(), None, None)
    started = time.perf_counter()
    with transaction.atomic() if atomic else contextlib.nullcontext():
        Order.objects.create(customer=customer, number=f"B-{number}", total="25.00")
        if floor:
            outbox.insert_rows("default", [row])
    return time.perf_counter() - started


def time_creates(customer, count: int, atomic: bool) -> list[float]:
    """Seconds per create, ``count`` creates one after another."""
    return [time_one(customer, number, atomic) for number in range(count)]


def set_bound(bound: bool) -> None:
    """Register the settings' bindings (the ``order.created`` one among them), or none on ``Order``."""
    from django_webhooks.capture.bindings import registry
    from example_project.shop.models import Order

    if bound and not registry.bindings_for(Order):
        registry.load_from_settings()
    elif not bound:
        for binding in registry.bindings_for(Order):
            registry.unregister(binding)


#: The order of the three kinds of create, rotating from one create to the next.
ROTATION = [("bare", "floor", "bound"), ("floor", "bound", "bare"), ("bound", "bare", "floor")]


def measure(customer, rounds: int, per_round: int, atomic: bool) -> tuple[float, float, float]:
    """Medians of ``Order.objects.create()``: bare, with a hand-written event INSERT, with the binding."""
    samples: dict[str, list[float]] = {"bare": [], "floor": [], "bound": []}
    time_creates(customer, 50, atomic)  # warm-up: connections, broker, catalog cache
    number = 0
    for index in range(rounds * per_round):
        for kind in ROTATION[index % len(ROTATION)]:
            set_bound(kind == "bound")
            samples[kind].append(time_one(customer, 10_000 + number, atomic, floor=kind == "floor"))
            number += 1
    set_bound(True)
    return tuple(statistics.median(samples[kind]) for kind in ("bare", "floor", "bound"))  # type: ignore[return-value]


def run(rounds: int, per_round: int) -> list[str]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.db import connection

    from django_webhooks.delivery import broker
    from django_webhooks.models import Event, Subscription
    from example_project.shop.models import Customer, Order

    backend = connection.vendor
    broker_name = "redis" if settings.Q_CLUSTER.get("redis") else "orm"
    user = User.objects.create(username="bench")
    customer = Customer.objects.create(user=user, name="Bench")
    lines = [f"backend={backend} broker={broker_name} rounds={rounds} creates/round/mode={per_round}"]
    print(lines[0], flush=True)
    for subscriptions in (1, 1000):
        Subscription.objects.all().delete()
        Subscription.objects.bulk_create(
            Subscription(url=f"https://example.com/hook/{i}", event_types=["order.created"], owner_id=str(user.pk))
            for i in range(subscriptions)
        )
        for mode, atomic in MODES:
            bare, floor, bound = measure(customer, rounds, per_round, atomic)
            events = Event.objects.filter(event_type="order.created").count()
            lines.append(
                f"{backend:10} {mode:20} subscriptions={subscriptions:5}  bare={bare * 1e6:6.0f} us  "
                f"floor={floor / bare:4.2f}  bound={bound * 1e6:6.0f} us  ratio={bound / bare:4.2f}  "
                f"(events recorded by the binding: {events})"
            )
            print(lines[-1], flush=True)
            Order.objects.all().delete()
            Event.objects.all().delete()
            broker.get_broker().purge_queue()
    lines.append(tasks_per_burst(customer, 2000))
    print(lines[-1], flush=True)
    return lines


def tasks_per_burst(customer, saves: int) -> str:
    """Tasks the handoff leaves on the broker for ``saves`` autocommit saves, no worker running."""
    from django.db import connection

    from django_webhooks.delivery import broker, handoff
    from django_webhooks.models import Handoff

    broker.get_broker().purge_queue()
    Handoff.objects.all().delete()
    handoff._covered_until.clear()
    time_creates(customer, saves, atomic=False)
    tasks = broker.get_broker().queue_size()
    return f"{connection.vendor:10} handoff: {saves} autocommit saves, no worker -> {tasks} task(s) on the broker"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--per-round", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dwh-bench-") as directory:
        setup_django(os.path.join(directory, "bench.sqlite3"))
        from django.db import connection

        from django_webhooks.delivery import broker

        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            run(args.rounds, args.per_round)
        finally:
            broker.get_broker().purge_queue()
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

"""The outbox (django_webhooks/outbox.py): event rows written before the recording call returns.

Also the two promises a web process relies on, each checked in real processes: a SIGKILL right
after a save never leaves the change without its event, and forking while the library is busy
never leaves a child hanging.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_webhooks import send_event
from django_webhooks.capture import outbox
from django_webhooks.models import Event, Subscription
from tests.models import Order
from tests.qcluster import database_env

ROOT = Path(__file__).resolve().parents[2]


# --- inserting -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_inserted_rows_read_back_as_the_orm_writes_them():
    now = timezone.now()
    rows = [
        outbox.EventRow("order.created", '{"id":1,"total":"9.99"}', "7", now, "key-1", ["$.id: wrong"]),
        outbox.EventRow("order.updated", '{"id":2}', None, now),
    ]
    pks = outbox.insert_rows("default", rows)
    first, second = (Event.objects.get(pk=pk) for pk in pks)
    assert (first.event_type, first.payload, first.owner_id) == ("order.created", {"id": 1, "total": "9.99"}, "7")
    assert (first.idempotency_key, first.schema_errors, first.created_at) == ("key-1", ["$.id: wrong"], now)
    assert (first.body, first.fanned_out_at) == ("", None)
    assert (second.event_type, second.owner_id, second.idempotency_key, second.schema_errors) == (
        "order.updated",
        None,
        None,
        None,
    )
    assert rows[0].to_event(pks[0], "default").payload == first.payload


@pytest.mark.django_db
def test_large_inserts_are_split_into_batches(monkeypatch):
    monkeypatch.setattr(outbox, "INSERT_BATCH_SIZE", 3)
    rows = [outbox.EventRow("order.created", f'{{"id":{n}}}', None, timezone.now()) for n in range(7)]
    with CaptureQueriesContext(connection) as captured:
        pks = outbox.insert_rows("default", rows)
    assert len(captured) == 3
    assert [Event.objects.get(pk=pk).payload["id"] for pk in pks] == list(range(7))


# --- in the caller's transaction ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rollback_records_and_enqueues_nothing(customer, enqueued):
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(customer=customer, number="A-1", total="1.00")
        send_event("order.created", {"id": 1})
        raise RuntimeError("the view failed")
    assert Event.objects.count() == 0
    assert enqueued == []


@pytest.mark.django_db(transaction=True)
def test_one_enqueue_per_transaction_however_many_events(customer, enqueued):
    with transaction.atomic():
        for number in range(200):
            Order.objects.create(customer=customer, number=f"A-{number}", total="1.00")
        assert enqueued == []  # nothing before commit
    assert Event.objects.count() == 200
    assert enqueued == [1]

    with transaction.atomic():
        send_event("order.created", {"id": 1})
        send_event("order.created", {"id": 2})
    assert enqueued == [1, 1]


@pytest.mark.django_db(transaction=True)
def test_rolled_back_savepoint_does_not_lose_the_handoff(customer, enqueued):
    with transaction.atomic():
        try:
            with transaction.atomic():
                send_event("order.created", {"id": 1})
                raise ValueError
        except ValueError:
            pass
        send_event("order.created", {"id": 2})
    assert list(Event.objects.values_list("payload__id", flat=True)) == [2]
    assert enqueued == [1]


@pytest.mark.django_db(transaction=True)
def test_a_failed_transaction_does_not_block_the_next_one(customer, enqueued):
    with pytest.raises(RuntimeError), transaction.atomic():
        send_event("order.created", {"id": 1})
        raise RuntimeError
    with transaction.atomic():
        send_event("order.created", {"id": 2})
    assert enqueued == [1]


@pytest.mark.django_db(transaction=True)
def test_an_autocommit_save_has_its_event_when_it_returns(customer, enqueued):
    Order.objects.create(customer=customer, number="A-1", total="1.00")
    assert Event.objects.filter(event_type="order.created").count() == 1
    assert enqueued == [1]


@pytest.mark.django_db
def test_on_commit_callback_is_registered_once(customer, django_capture_on_commit_callbacks, enqueued):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        for number in range(20):
            Order.objects.create(customer=customer, number=f"A-{number}", total="1.00")
    assert len(callbacks) == 1
    assert enqueued == [1]


@pytest.mark.django_db
def test_write_path_queries_do_not_depend_on_subscriptions(customer, enqueued, django_capture_on_commit_callbacks):
    def queries_for_one_order(number):
        with django_capture_on_commit_callbacks(), CaptureQueriesContext(connection) as captured:
            Order.objects.create(customer=customer, number=number, total="1.00")
        return len(captured)

    queries_for_one_order("warm-up")  # fills the event type catalog cache
    counts = [queries_for_one_order("zero")]
    Subscription.objects.create(
        url="https://example.com/1", event_types=["order.created"], owner_id=str(customer.user_id)
    )
    counts.append(queries_for_one_order("one"))
    Subscription.objects.bulk_create(
        Subscription(url=f"https://example.com/{i}", event_types=["order.*"], owner_id=str(customer.user_id))
        for i in range(999)
    )
    counts.append(queries_for_one_order("thousand"))
    assert counts == [counts[0]] * 3
    assert counts[0] <= 2  # the order and its event


# --- processes: SIGKILL and fork ----------------------------------------------------------------


def _python_child(script: str, *argv: object) -> dict[str, Any]:
    """The ``subprocess`` arguments of a Python child that runs ``script`` with ``argv`` on the test
    database (``tests.settings``, as the qcluster tests start one)."""
    return {
        "args": [sys.executable, "-c", script, *map(str, argv)],
        "env": {**os.environ, **database_env(), "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)},
        "cwd": ROOT,
    }


SAVE_THEN_WAIT = """
import sys, time
import django
django.setup()
from django.contrib.auth.models import User
from tests.models import Customer, Order

customer = Customer.objects.create(user=User.objects.create(username="killed"), name="K")
for number in range(int(sys.argv[1])):
    Order.objects.create(customer=customer, number=f"K-{number}", total="1.00")
    print(number, flush=True)
time.sleep(60)
"""


def _orders_without_their_event() -> list[int]:
    created = {
        payload["id"] for payload in Event.objects.filter(event_type="order.created").values_list("payload", flat=True)
    }
    return [pk for pk in Order.objects.values_list("pk", flat=True) if pk not in created]


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_sigkill_right_after_the_last_save_returns_loses_no_event():
    saves = 1000
    child = subprocess.Popen(**_python_child(SAVE_THEN_WAIT, saves), stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        line = ""
        while time.monotonic() < deadline and line.strip() != str(saves - 1):
            ready, _, _ = select.select([child.stdout], [], [], 5)
            if ready:
                line = child.stdout.readline()
                if not line:
                    break
        child.send_signal(signal.SIGKILL)  # as the last save() has returned
    finally:
        child.kill()
        child.wait(timeout=30)
    assert line.strip() == str(saves - 1), "the child did not finish its saves"
    assert Order.objects.count() == saves
    assert _orders_without_their_event() == []


FORK_WHILE_BUSY = """
import os, sys, threading, time
import django
django.setup()
from django.db import connection, connections
from django.contrib.auth.models import User
from django_webhooks import send_event
from tests.models import Customer, Order

forks, savers = int(sys.argv[1]), 3
customer = Customer.objects.create(user=User.objects.create(username="forker"), name="F")
# SQLite cannot survive a fork in the middle of one of its own statements, with or without us,
# so our threads save under this lock and forks happen while it is held: only library code
# (never the driver) can then be mid-work in another thread.
driver_lock = threading.Lock()
stop = threading.Event()

def save_orders(worker):
    number = 0
    while not stop.is_set():
        with driver_lock:
            Order.objects.create(customer=customer, number=f"T{worker}-{number}", total="1.00")
            send_event("order.updated", {"id": number}, owner=customer.user)
        number += 1
    connections.close_all()

threads = [threading.Thread(target=save_orders, args=(i,)) for i in range(savers)]
for thread in threads:
    thread.start()
hung = 0
for index in range(forks):
    with driver_lock:
        pid = os.fork()
        if pid == 0:  # the child: a fresh connection, one bound save and one event, then exit
            try:
                for alias in connections:
                    connections[alias].connection = None  # the parent's socket is not ours to use
                Order.objects.create(customer=customer, number=f"child-{index}", total="1.00")
                send_event("order.updated", {"id": index}, owner=customer.user)
                os._exit(0)
            except BaseException as exc:
                print("child failed:", repr(exc), file=sys.stderr, flush=True)
                os._exit(3)
    deadline = time.monotonic() + 30
    status = None
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.01)
    else:
        hung += 1
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        continue
    if os.waitstatus_to_exitcode(status) != 0:
        print("child exited with", os.waitstatus_to_exitcode(status), file=sys.stderr, flush=True)
        sys.exit(2)
stop.set()
for thread in threads:
    thread.join(30)
print("hung", hung, flush=True)
"""


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_forking_while_the_library_is_busy_never_hangs_a_child():
    forks = 200
    done = subprocess.run(**_python_child(FORK_WHILE_BUSY, forks), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["hung", "0"]
    children = Order.objects.filter(number__startswith="child-").count()
    assert children == forks
    assert _orders_without_their_event() == []

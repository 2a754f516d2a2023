from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_webhooks import background, outbox, send_event
from django_webhooks.models import Event, Subscription
from example_project.shop.models import Order

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def pushes(monkeypatch):
    """Threads that pushed a processing task, instead of tasks on the broker."""
    from django_webhooks import queue

    threads = []
    monkeypatch.setattr(queue, "enqueue_processing", lambda: threads.append(threading.current_thread().name))
    return threads


@pytest.fixture
def background_writes(settings, transactional_db, pushes):
    """``AUTOCOMMIT_EVENTS = "background"``; the writer is drained and its connection closed after."""
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "AUTOCOMMIT_EVENTS": "background"}
    yield
    assert outbox.flush(timeout=10)
    background.close_connections()


class Batches(list):
    """Row counts of the writer's INSERTs; clearing ``hold`` keeps the next one waiting until it is set."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.hold.set()


@pytest.fixture
def batches(monkeypatch):
    sizes = Batches()
    real = outbox.insert_rows

    def spy(using, rows):
        if threading.current_thread().name == "django-webhooks-outbox":
            sizes.hold.wait(timeout=10)
            sizes.append(len(rows))
        return real(using, rows)

    monkeypatch.setattr(outbox, "insert_rows", spy)
    return sizes


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
def test_autocommit_save_under_the_test_runner_records_inline(customer, enqueued):
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


# --- autocommit: the writer thread -----------------------------------------------------------


def test_autocommit_event_costs_the_request_no_query(background_writes, customer, enqueued, pushes, batches):
    with CaptureQueriesContext(connection) as captured:
        order = Order.objects.create(customer=customer, number="A-1", total="9.99")
    assert [query["sql"].split()[:3] for query in captured] == [["INSERT", "INTO", '"shop_order"']]
    assert outbox.flush(timeout=10)
    event = Event.objects.get()
    assert (event.event_type, event.payload["id"], event.owner_id) == ("order.created", order.pk, str(customer.user_id))
    assert batches == [1]
    assert pushes == ["django-webhooks-outbox"]  # the writer pushed once its rows were committed
    assert enqueued == []


def test_rows_that_arrive_during_an_insert_share_the_next_one(background_writes, customer, pushes, batches):
    batches.hold.clear()
    Order.objects.create(customer=customer, number="A-0", total="1.00")
    for number in range(1, 100):
        Order.objects.create(customer=customer, number=f"A-{number}", total="1.00")
    batches.hold.set()
    assert outbox.flush(timeout=10)
    assert sorted(Event.objects.values_list("payload__number", flat=True)) == sorted(f"A-{n}" for n in range(100))
    assert sum(batches) == 100 and len(batches) <= 3  # 1, then the other 99 together
    assert len(pushes) == len(batches)


def test_inside_a_transaction_the_event_is_written_inline(background_writes, customer, enqueued):
    with transaction.atomic():
        Order.objects.create(customer=customer, number="A-1", total="1.00")
        assert Event.objects.count() == 1  # in the transaction, before commit
    with pytest.raises(RuntimeError), transaction.atomic():
        Order.objects.create(customer=customer, number="A-2", total="1.00")
        raise RuntimeError
    assert outbox.flush(timeout=10)
    assert list(Event.objects.values_list("payload__number", flat=True)) == ["A-1"]


@pytest.mark.parametrize("mode", ["inline", None])
@pytest.mark.django_db(transaction=True)
def test_inline_mode_and_the_test_runner_write_in_the_request(settings, customer, enqueued, mode):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "AUTOCOMMIT_EVENTS": mode}
    with CaptureQueriesContext(connection) as captured:
        Order.objects.create(customer=customer, number="A-1", total="1.00")
    assert len(captured) == 2
    assert Event.objects.count() == 1
    assert enqueued == [1]


@pytest.mark.parametrize("limit", ["MAX_PENDING_ROWS", "MAX_PENDING_BYTES"])
def test_a_full_writer_makes_the_request_write_inline(
    background_writes, customer, enqueued, batches, monkeypatch, limit
):
    monkeypatch.setattr(outbox, limit, 1 if limit == "MAX_PENDING_ROWS" else 150)  # one order's data fits
    batches.hold.clear()  # the database is "away": the writer holds what it has
    Order.objects.create(customer=customer, number="A-1", total="1.00")
    Order.objects.create(customer=customer, number="A-2", total="1.00")
    assert list(Event.objects.values_list("payload__number", flat=True)) == ["A-2"]  # written inline
    batches.hold.set()
    assert outbox.flush(timeout=10)
    assert sorted(Event.objects.values_list("payload__number", flat=True)) == ["A-1", "A-2"]
    assert outbox._writer._held_bytes == 0


def test_send_event_outside_a_transaction_returns_a_saved_event(background_writes, enqueued):
    event = send_event("order.created", {"id": 7})
    assert Event.objects.get().pk == event.pk


def test_the_writer_waits_out_an_unreachable_database(background_writes, customer, enqueued, monkeypatch, caplog):
    # Fault injection: the database cannot be stopped under a shared test run.
    failures = []
    real = outbox.insert_rows

    def unreachable_twice(using, rows):
        if len(failures) < 2:
            failures.append(len(rows))
            raise OperationalError("connection refused")
        return real(using, rows)

    monkeypatch.setattr(outbox, "insert_rows", unreachable_twice)
    with caplog.at_level(logging.WARNING, logger="django_webhooks.outbox"):
        Order.objects.create(customer=customer, number="A-1", total="1.00")
        assert outbox.flush(timeout=10)
    assert failures == [1, 1]
    assert Event.objects.count() == 1
    assert caplog.text.count("retrying") == 2


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
def test_a_row_the_database_rejects_is_logged_and_the_batch_kept(background_writes, customer, enqueued, caplog):
    batch_writer = outbox._writer
    rows = [
        outbox.EventRow("order.created", '{"number":"A-1"}', None, timezone.now()),
        outbox.EventRow("order.created", '{"number":"bad\\u0000"}', None, timezone.now()),  # jsonb refuses NUL
        outbox.EventRow("order.created", '{"number":"A-3"}', None, timezone.now()),
    ]
    with caplog.at_level(logging.ERROR, logger="django_webhooks.outbox"):
        for row in rows:
            assert batch_writer.submit("default", row)
        assert outbox.flush(timeout=10)
    assert sorted(Event.objects.values_list("payload__number", flat=True)) == ["A-1", "A-3"]
    assert "rejected event order.created" in caplog.text


def test_a_forked_child_does_not_inherit_pending_rows(background_writes, customer, enqueued, batches):
    batches.hold.clear()
    Order.objects.create(customer=customer, number="A-0", total="1.00")
    Order.objects.create(customer=customer, number="A-1", total="1.00")  # waits in the parent's buffer
    pid = os.fork()
    if pid == 0:  # the child: its writer starts empty
        os._exit(0 if outbox._writer.pending() == 0 else 1)
    _, status = os.waitpid(pid, 0)
    batches.hold.set()
    assert os.waitstatus_to_exitcode(status) == 0
    assert outbox.flush(timeout=10)
    assert Event.objects.count() == 2  # written once, by the parent


EXIT_RIGHT_AFTER_A_SAVE = """
import multiprocessing
from django.contrib.auth.models import User
from example_project.shop.models import Customer, Order

def save_order(number):
    Order.objects.create(customer=Customer.objects.get(), number=number, total="1.00")

Customer.objects.create(user=User.objects.create(username="exit"), name="Exit")
save_order("in-the-process")
# A django-q2 worker is a forked multiprocessing child; it ends with os._exit(), skipping atexit.
from django.db import connections
connections.close_all()
child = multiprocessing.get_context("fork").Process(target=save_order, args=("in-a-child",))
child.start()
child.join()
assert child.exitcode == 0
"""


@pytest.mark.e2e
def test_processes_that_exit_right_after_a_save_still_write_the_event(tmp_path):
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "SQLITE_PATH": str(tmp_path / "shop.sqlite3"),
        "DATABASE_URL": "",
        "REDIS_URL": "",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=environment, cwd=ROOT, check=True, timeout=120)
    subprocess.run(
        [*manage, "shell", "-c", EXIT_RIGHT_AFTER_A_SAVE], env=environment, cwd=ROOT, check=True, timeout=120
    )
    with sqlite3.connect(tmp_path / "shop.sqlite3") as database:
        numbers = database.execute("SELECT payload ->> '$.number' FROM django_webhooks_event ORDER BY id").fetchall()
        tasks = database.execute("SELECT count(*) FROM django_q_ormq").fetchone()[0]
    assert sorted(numbers) == [("in-a-child",), ("in-the-process",)]
    assert tasks >= 1  # the handoff was pushed before exit too

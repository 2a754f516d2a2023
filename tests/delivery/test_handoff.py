"""The handoff (django_webhooks/handoff.py): one task for a burst of commits, on the real broker."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from django_webhooks import send_event, tasks
from django_webhooks.delivery import broker, handoff
from django_webhooks.models import Delivery, Event, Handoff
from tests.models import Order


def queued_functions() -> list[str]:
    """Task paths waiting on the configured broker (ORM table or Redis list)."""
    if Conf.ORM:
        payloads = [row.payload for row in OrmQ.objects.order_by("id")]
    else:
        q_broker = broker.get_broker()
        payloads = q_broker.connection.lrange(q_broker.list_key, 0, -1)
    return [SignedPackage.loads(payload)["func"] for payload in payloads]


@pytest.fixture
def empty_broker(transactional_db, fresh_brokers):
    """A real broker with nothing on it, and no promise remembered by this process."""
    broker.get_broker().purge_queue()
    handoff._covered_until.clear()
    yield
    broker.get_broker().purge_queue()
    handoff._covered_until.clear()


def test_a_burst_of_autocommit_saves_with_no_worker_leaves_at_most_a_few_tasks(empty_broker, customer):
    started = time.monotonic()
    for number in range(2000):
        Order.objects.create(customer=customer, number=f"A-{number}", total="1.00")
    elapsed = time.monotonic() - started
    assert Event.objects.filter(event_type="order.created").count() == 2000
    pushed = queued_functions()
    # One push, plus one per REQUEST_TTL the burst lasted (no worker ever takes the first).
    assert set(pushed) == {"django_webhooks.tasks.process_events"}
    assert len(pushed) <= min(20, 1 + int(elapsed // handoff.REQUEST_TTL))


def test_transactions_share_the_pending_request(empty_broker):
    for number in range(50):
        with transaction.atomic():
            send_event("order.created", {"id": number})
    assert queued_functions() == ["django_webhooks.tasks.process_events"]


def test_a_producer_trusts_a_running_pollers_promise_without_a_query(empty_broker, monkeypatch):
    # A promise long enough to outlast the test on a loaded machine (the default is 2 s).
    monkeypatch.setattr(handoff, "ACTIVE_SECONDS", 60.0)
    handoff.FanoutPoller().activate()
    send_event("order.created", {"id": 1})  # reads the promise once
    with CaptureQueriesContext(connection) as captured:
        for number in range(20):
            send_event("order.created", {"id": number})
    assert len(captured) == 20  # the events' inserts; nothing for the handoff
    assert queued_functions() == []


def test_a_promise_near_its_end_is_not_trusted(empty_broker):
    now = timezone.now()
    Handoff.objects.create(queue="default", active_until=now + timedelta(seconds=handoff.TRUST_MARGIN / 2))
    send_event("order.created", {"id": 1})
    assert queued_functions() == ["django_webhooks.tasks.process_events"]


def test_a_request_no_worker_took_is_pushed_again_after_its_ttl(empty_broker):
    send_event("order.created", {"id": 1})
    Handoff.objects.update(requested_at=timezone.now() - timedelta(seconds=handoff.REQUEST_TTL + 1))
    handoff._covered_until.clear()  # as in another process, or this one after the TTL
    send_event("order.created", {"id": 2})
    assert queued_functions() == ["django_webhooks.tasks.process_events"] * 2


def test_a_handoff_that_fails_is_logged_and_the_save_succeeds(empty_broker, customer, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("the handoff table is gone")

    monkeypatch.setattr(handoff, "_claim", broken)
    order = Order.objects.create(customer=customer, number="A-1", total="1.00")
    assert Event.objects.filter(payload__id=order.pk).exists()
    assert "sweeper will fan them out" in caplog.text


def test_the_poller_fans_out_what_commits_while_it_runs_and_keeps_its_promise(
    empty_broker, make_subscription, monkeypatch
):
    # Short, so the test waits little for it to pass; long enough that the second event, on a
    # loaded machine too, is recorded well within it (a producer trusts it until TRUST_MARGIN before).
    monkeypatch.setattr(handoff, "ACTIVE_SECONDS", 2.5)
    make_subscription(event_types=["order.created"])
    poller = handoff.FanoutPoller()
    poller.activate()
    assert Handoff.objects.get().active_until == poller.promise
    send_event("order.created", {"id": 1})
    assert poller.poll() is True
    assert Delivery.objects.count() == 1
    assert poller.poll() is False
    send_event("order.created", {"id": 2})  # during the promise: nothing is pushed for it
    while poller.keep_alive():  # ends by itself: the promise is not renewed without new events
        time.sleep(0.01)
    poller.close()  # one last look after the promise has passed
    assert Delivery.objects.count() == 2
    assert queued_functions() == ["django_webhooks.tasks.deliver_due"]


def test_a_poller_whose_budget_ran_out_hands_its_promise_to_a_successor(empty_broker):
    poller = handoff.FanoutPoller()
    poller.activate()
    poller.close()
    assert Handoff.objects.get().requested_at is not None
    assert queued_functions() == ["django_webhooks.tasks.process_events"]


def test_process_events_delivers_events_saved_while_it_polls(empty_broker, make_subscription, receiver, monkeypatch):
    """The whole task: events recorded while it runs reach the receiver without another push."""
    monkeypatch.setattr(handoff, "ACTIVE_SECONDS", 1.0)
    make_subscription(receiver.url("/hook"), event_types=["order.created"])
    send_event("order.created", {"id": 0})
    polls = 0
    real_poll = handoff.FanoutPoller.poll

    def poll_and_record(self):
        nonlocal polls
        polls += 1
        if polls <= 5:  # events keep arriving during the first polls
            send_event("order.created", {"id": polls})
        return real_poll(self)

    monkeypatch.setattr(handoff.FanoutPoller, "poll", poll_and_record)
    broker.get_broker().purge_queue()
    assert tasks.process_events() == 6
    assert sorted(json.loads(request.body)["data"]["id"] for request in receiver.requests) == list(range(6))
    assert Delivery.objects.filter(status="succeeded").count() == 6
    assert "django_webhooks.tasks.process_events" not in queued_functions()

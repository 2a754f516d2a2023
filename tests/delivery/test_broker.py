from __future__ import annotations

import logging
import socket

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django_q.brokers import redis_broker
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signing import SignedPackage

from django_webhooks.delivery import broker, handoff
from django_webhooks.models import Delivery, Event, Subscription
from django_webhooks.secret_store import create_secret
from tests.models import Customer, Order
from tests.receiver import Receiver

pytestmark = pytest.mark.usefixtures("fresh_brokers")


@pytest.fixture
def dead_broker(monkeypatch):
    """A real django-q2 Redis broker pointed at a loopback port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")
    dead = redis_broker.Redis(list_key="dwh-dead")
    monkeypatch.setitem(broker._brokers, None, dead)
    return dead


def queued_tasks():
    """Tasks waiting on the configured broker (ORM table or Redis list), oldest first."""
    if Conf.ORM:
        return [SignedPackage.loads(row.payload) for row in OrmQ.objects.order_by("id")]
    q_broker = broker.get_broker()
    return [SignedPackage.loads(payload) for payload in q_broker.connection.lrange(q_broker.list_key, 0, -1)]


@pytest.fixture
def empty_queue(db):
    broker.get_broker().purge_queue()
    yield
    broker.get_broker().purge_queue()


def test_enqueue_processing_puts_one_task_on_the_broker(empty_queue):
    assert broker.enqueue_processing() is True
    (task,) = queued_tasks()
    assert task["func"] == "django_webhooks.tasks.process_events"
    assert task["save"] is False
    assert "cluster" not in task


def test_enqueue_delivery_puts_n_tasks(empty_queue):
    assert broker.enqueue_delivery(3) == 3
    assert [task["func"] for task in queued_tasks()] == ["django_webhooks.tasks.deliver_due"] * 3
    assert broker.enqueue_delivery(0) == 0


def test_queue_setting_names_the_cluster(settings, empty_queue):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "QUEUE": "webhooks-priority"}
    broker.get_broker().purge_queue()
    assert broker.enqueue_processing() is True
    assert "webhooks-priority" in broker.get_broker().list_key
    (task,) = queued_tasks()
    assert task["cluster"] == "webhooks-priority"
    broker.get_broker().purge_queue()


@pytest.mark.django_db
def test_one_broker_per_process():
    assert broker.get_broker() is broker.get_broker()


@pytest.mark.django_db
def test_broker_outage_is_logged_not_raised(dead_broker, caplog):
    with caplog.at_level(logging.ERROR, logger="django_webhooks.delivery.broker"):
        assert broker.enqueue_processing() is False
        assert broker.enqueue_delivery(2) == 0
    assert "sweeper" in caplog.text
    assert [record.name for record in caplog.records] == ["django_webhooks.delivery.broker"] * 2


@pytest.mark.django_db(transaction=True)
def test_save_succeeds_with_the_broker_down_and_is_delivered_when_it_is_back(monkeypatch, caplog):
    user = User.objects.create(username="alice")
    customer = Customer.objects.create(user=user, name="Alice")
    with Receiver() as receiver:
        subscription = Subscription.objects.create(
            url=receiver.url("/hook"), event_types=["order.created"], owner_id=str(user.pk)
        )
        create_secret(subscription)

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setattr(Conf, "DJANGO_REDIS", None)
        monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")
        monkeypatch.setitem(broker._brokers, None, redis_broker.Redis(list_key="dwh-dead"))
        handoff._covered_until.clear()

        with caplog.at_level(logging.ERROR, logger="django_webhooks.delivery.broker"), transaction.atomic():
            order = Order.objects.create(customer=customer, number="A-1", total="9.99")
        assert Order.objects.filter(pk=order.pk).exists()
        event = Event.objects.get(event_type="order.created")
        assert event.fanned_out_at is None
        assert "Could not enqueue" in caplog.text

        # The broker is back: the sweeper's task finds the event and delivers it.
        broker._brokers.clear()
        from django_webhooks import tasks

        tasks.sweep()
        tasks.deliver_due()
        receiver.wait_for(1)
        event.refresh_from_db()
        assert event.fanned_out_at is not None
        assert receiver.requests[0].body == event.body.encode()
        assert Delivery.objects.get().status == "succeeded"


@pytest.fixture
def dummy_tasks_backend(settings):
    """DISPATCHER "django_tasks" on the framework's Dummy backend (it keeps what is enqueued)."""
    from django_webhooks.delivery import via_django_tasks

    framework = via_django_tasks.framework()
    __import__(f"{framework.__name__}.signals")  # rebuilds the framework's backends when TASKS changes
    settings.TASKS = {
        "default": {"BACKEND": f"{framework.__name__}.backends.dummy.DummyBackend", "QUEUES": ["default", "hooks"]}
    }
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "DISPATCHER": "django_tasks", "TASKS_WORKERS": 3}
    broker._deferred_until.clear()
    yield via_django_tasks.backend()
    broker._deferred_until.clear()


def test_the_tasks_dispatcher_pushes_our_task_objects_on_the_queue(dummy_tasks_backend, settings):
    assert broker.enqueue_processing() is True
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "QUEUE": "hooks"}
    assert broker.enqueue_delivery(2) == 2
    pushed = [(result.task.module_path, result.task.queue_name, result.args) for result in dummy_tasks_backend.results]
    assert pushed == [
        ("django_webhooks.tasks.process_events_task", "default", []),
        ("django_webhooks.tasks.deliver_due_task", "hooks", []),
        ("django_webhooks.tasks.deliver_due_task", "hooks", []),
    ]
    assert broker.workers() == 3 and broker.runs_inline() is False


def test_the_tasks_dispatcher_defers_where_the_backend_can(dummy_tasks_backend):
    from datetime import timedelta

    from django.utils import timezone

    at = timezone.now() + timedelta(minutes=5)
    assert broker.can_defer() is True
    assert broker.defer_delivery(at) is True
    assert broker.defer_delivery(at + timedelta(minutes=1)) is False  # the first covers it
    assert [result.task.run_after for result in dummy_tasks_backend.results] == [at]


def test_a_queue_the_tasks_backend_refuses_is_logged_not_raised(dummy_tasks_backend, settings, caplog):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "QUEUE": "nowhere"}  # check E019
    with caplog.at_level(logging.ERROR, logger="django_webhooks.delivery.broker"):
        assert broker.enqueue_processing() is False
        assert broker.enqueue_delivery(2) == 0
    assert "sweeper" in caplog.text and dummy_tasks_backend.results == []

"""Shared fixtures: a loopback receiver, subscription factories, a real qcluster subprocess."""

from __future__ import annotations

import itertools

import pytest

from tests.receiver import Receiver

_counter = itertools.count(1)


@pytest.fixture
def enqueued(monkeypatch):
    """Processing handoffs requested, one ``1`` each, instead of tasks on the broker."""
    from django_webhooks.delivery import handoff

    calls = []
    monkeypatch.setattr(handoff, "request_processing", lambda: calls.append(1))
    return calls


@pytest.fixture
def fresh_brokers():
    """No django-q2 broker cached by this process, before and after the test.

    ``django_webhooks.delivery.broker`` builds one per cluster name and keeps it; a test that
    changes the broker settings (django-q2's ``Conf``, ``Q_CLUSTER``) needs it built again. The
    handoff promise this process trusts from memory goes too: the previous test's cluster that
    made it is gone, and its ``Handoff`` row with it (transactional tests empty the tables).
    """
    from django_webhooks.delivery import broker, handoff

    broker._brokers.clear()
    handoff._covered_until.clear()
    yield
    broker._brokers.clear()
    handoff._covered_until.clear()


@pytest.fixture
def customer(db):
    """Alice's shop customer; ``customer.user`` owns her subscriptions and events."""
    from django.contrib.auth.models import User

    from tests.models import Customer

    user = User.objects.create(username="alice")
    return Customer.objects.create(user=user, name="Alice", email="a@example.com")


@pytest.fixture
def receiver():
    """A started loopback :class:`~tests.receiver.Receiver`, stopped after the test."""
    with Receiver() as rx:
        yield rx


@pytest.fixture
def make_subscription(db):
    """``make_subscription(url, **fields)``: a subscription with a current signing secret."""
    from django_webhooks.models import Subscription
    from django_webhooks.secret_store import create_secret

    def make(url: str = "http://127.0.0.1:9/hook", **fields):
        fields.setdefault("event_types", ["*"])
        subscription = Subscription.objects.create(url=url, **fields)
        create_secret(subscription)
        return subscription

    return make


@pytest.fixture
def make_delivery(db):
    """``make_delivery(subscription, data=None, **fields)``: a fanned-out event and its delivery."""
    from django.utils import timezone

    from django_webhooks.delivery.fanout import build_body
    from django_webhooks.models import Delivery, Event

    def make(subscription, data=None, event_type: str = "order.created", **fields):
        event = Event(event_type=event_type, payload=data if data is not None else {"n": next(_counter)})
        event.body = build_body(event, thin=False)
        event.fanned_out_at = timezone.now()
        event.save()
        return Delivery.objects.create(event=event, subscription=subscription, **fields)

    return make


@pytest.fixture
def qcluster(transactional_db):
    """``qcluster(overrides=None)`` starts a ``manage.py qcluster`` on the test database.

    Returns a :class:`tests.qcluster.QCluster`; every cluster started is killed after the test.
    """
    from tests.qcluster import QCluster

    started: list[QCluster] = []

    def start(overrides: dict | None = None, q_cluster: dict | None = None) -> QCluster:
        cluster = QCluster(overrides=overrides, q_cluster=q_cluster).start()
        started.append(cluster)
        return cluster

    yield start
    for cluster in started:
        cluster.stop()

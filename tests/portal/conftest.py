"""Fixtures of the portal tests: two owners with an endpoint and a delivery each, logged-in clients."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from django_webhooks.models import DeliveryStatus
from tests.admin import add_attempt


@pytest.fixture(autouse=True)
def fresh_throttles():
    """Throttle counts live in the default cache; each test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="x")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="x")


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(bob) -> Client:
    client = Client()
    client.force_login(bob)
    return client


@pytest.fixture
def alice_endpoint(alice, make_subscription):
    return make_subscription(
        "http://127.0.0.1:9/alice", owner_id=str(alice.pk), event_types=["order.*"], description="Alice ERP"
    )


@pytest.fixture
def bob_endpoint(bob, make_subscription):
    return make_subscription(
        "http://127.0.0.1:9/bob", owner_id=str(bob.pk), event_types=["order.created"], description="Bob shop"
    )


@pytest.fixture
def alice_delivery(alice_endpoint, make_delivery):
    delivery = make_delivery(alice_endpoint, status=DeliveryStatus.FAILED, attempts=1)
    add_attempt(delivery, succeeded=False, status=500, error_class="http_status", response_body="boom")
    return delivery


@pytest.fixture
def bob_delivery(bob_endpoint, make_delivery):
    delivery = make_delivery(bob_endpoint, status=DeliveryStatus.FAILED, attempts=1)
    add_attempt(delivery, succeeded=False, status=500, error_class="http_status", response_body="bob's secret body")
    return delivery

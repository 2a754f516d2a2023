"""The async API: ``asend_event`` and ``asend_events_for_queryset``, in process and under uvicorn."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import requests
from asgiref.sync import async_to_sync

from django_webhooks import asend_event, asend_events_for_queryset
from django_webhooks.exceptions import InvalidPayload, UnknownEventType
from django_webhooks.models import Event
from tests.models import Order
from tests.qcluster import ROOT, database_env

pytestmark = pytest.mark.django_db


def test_asend_event_writes_the_event_before_it_returns(customer):
    event = async_to_sync(asend_event)("order.created", {"id": 7}, owner=customer.user, idempotency_key="k-7")

    stored = Event.objects.get(pk=event.pk)
    assert (stored.event_type, stored.payload, stored.owner_id) == ("order.created", {"id": 7}, str(customer.user.pk))
    again = async_to_sync(asend_event)("order.created", {"id": 7}, owner=customer.user, idempotency_key="k-7")
    assert again.pk == event.pk
    assert Event.objects.count() == 1


@pytest.mark.parametrize(
    ("event_type", "data", "error"),
    [("order.created", {"total": float("nan")}, InvalidPayload), ("no.such.type", {}, UnknownEventType)],
)
def test_asend_event_raises_the_same_errors_and_writes_nothing(event_type, data, error):
    with pytest.raises(error):
        async_to_sync(asend_event)(event_type, data)
    assert not Event.objects.exists()


def test_asend_events_for_queryset_records_one_event_per_object(customer):
    orders = [Order.objects.create(customer=customer, number=f"A-{n}", total=Decimal("1.00")) for n in range(3)]
    Event.objects.all().delete()

    events = async_to_sync(asend_events_for_queryset)(
        "order.updated", Order.objects.filter(pk__in=[o.pk for o in orders]), owner="customer.user"
    )

    assert sorted(e.payload["number"] for e in Event.objects.filter(pk__in=[e.pk for e in events])) == [
        "A-0",
        "A-1",
        "A-2",
    ]


class Uvicorn:
    """``uvicorn tests.asgi:application`` on a free loopback port, against the test database."""

    def __init__(self) -> None:
        env = {**os.environ, **database_env(), "DJANGO_SETTINGS_MODULE": "tests.settings"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.asgi:application", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.base_url = self._wait_for_url(timeout=60.0)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            seen.append(line)
            match = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                return match.group(1)
        self.stop()
        raise AssertionError("uvicorn did not start:\n" + "".join(seen))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


@pytest.fixture
def uvicorn(transactional_db):
    server = Uvicorn()
    yield server
    server.stop()


def test_async_views_under_an_asgi_server_record_their_events(uvicorn, customer):
    sent = requests.post(
        f"{uvicorn.base_url}/async/events/", json={"type": "order.created", "data": {"id": 1}}, timeout=30
    )
    assert sent.status_code == 200, sent.text
    assert Event.objects.get(pk=sent.json()["event_id"]).payload == {"id": 1}

    refused = requests.post(
        f"{uvicorn.base_url}/async/events/",
        data='{"type": "order.created", "data": {"total": NaN}}',
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert refused.status_code == 400
    assert refused.json()["error"] == "InvalidPayload"

    created = requests.post(
        f"{uvicorn.base_url}/async/orders/", json={"customer": customer.pk, "number": "B-1"}, timeout=30
    )
    assert created.status_code == 200, created.text
    bound = Event.objects.get(event_type="order.created", payload__number="B-1")
    assert bound.payload["id"] == created.json()["order_id"]
    assert bound.owner_id == str(customer.user.pk)
    assert Event.objects.count() == 2

"""Cursor pagination of every list (django_webhooks/api/pagination.py): the links walk the pages,
and a cursor the server did not write is a 404 "Invalid cursor", never a 500."""

from __future__ import annotations

import base64

import pytest

from django_webhooks.api.urls import router
from django_webhooks.models import Event
from tests.api import API

pytestmark = pytest.mark.django_db

PAGINATED = ["subscriptions", "events", "deliveries"]
#: ``p=`` positions that decode but are no creation time the database can compare with.
BAD_POSITIONS = [
    "notadate",
    "",
    "\x00",
    "2024-13-45 00:00:00+00:00",
    "2024-01-01 25:00:00+00:00",
    "0001-01-01 00:00:00+14:00",
    "9999-12-31 23:59:59-14:00",
    "2024-01-01",
    "2024-01-01 00:00:00",
    "1" * 5000,
]
#: Cursors that do not decode at all (DRF's own check).
UNDECODABLE = ["YQ", base64.b64encode(b"o=abc").decode(), base64.b64encode(b"r=x").decode(), "\u00e9"]


def cursor(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


@pytest.fixture
def two_of_each(alice, make_subscription, make_delivery):
    """Two subscriptions, events and deliveries of alice's: enough for a second page of one."""
    subscriptions = [make_subscription(owner_id=str(alice.pk)) for _ in range(2)]
    deliveries = [make_delivery(subscription) for subscription in subscriptions]
    Event.objects.filter(pk__in=[delivery.event_id for delivery in deliveries]).update(owner_id=str(alice.pk))


def test_these_are_all_the_lists_that_paginate():
    assert sorted(
        prefix for prefix, viewset, _ in router.registry if getattr(viewset, "pagination_class", None)
    ) == sorted(PAGINATED)


@pytest.mark.parametrize("resource", PAGINATED)
@pytest.mark.parametrize("position", BAD_POSITIONS)
def test_a_cursor_whose_position_is_not_a_time_is_an_invalid_cursor(client, two_of_each, resource, position):
    for querystring in (f"p={position}", f"o=1&r=1&p={position}"):
        response = client.get(f"{API}/{resource}/", {"cursor": cursor(querystring)})
        assert response.status_code == 404, (querystring, response.content)
        assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("resource", PAGINATED)
@pytest.mark.parametrize("encoded", UNDECODABLE)
def test_a_cursor_that_does_not_decode_is_an_invalid_cursor(client, two_of_each, resource, encoded):
    response = client.get(f"{API}/{resource}/", {"cursor": encoded})
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


@pytest.mark.parametrize("resource", PAGINATED)
def test_the_next_and_previous_links_still_work(client, two_of_each, resource):
    first = client.get(f"{API}/{resource}/?page_size=1").json()
    second = client.get(first["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 1
    assert second.json()["results"] != first["results"]
    back = client.get(second.json()["previous"])
    assert back.status_code == 200
    assert back.json()["results"] == first["results"]

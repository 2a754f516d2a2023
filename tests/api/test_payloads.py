"""Payload formats and pinned event type versions through the API (django_webhooks/api/serializers.py)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

from django_webhooks.models import PayloadFormat, Subscription
from tests.api import API
from tests.delivery.test_formats import V1_SCHEMA, V2_DATA, version_2

pytestmark = pytest.mark.django_db


@pytest.fixture
def order_v2(settings):
    """``order.created`` at version 2, version 1 still served."""
    settings.DJANGO_WEBHOOKS = {
        **django_settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {**django_settings.DJANGO_WEBHOOKS["EVENT_TYPES"], "order.created": version_2()},
    }


def create(client, receiver, **fields):
    return client.post(
        f"{API}/subscriptions/", {"url": receiver.url("/hook"), "event_types": ["order.*"], **fields}, format="json"
    )


def test_event_types_show_their_versions(client, order_v2):
    order = client.get(f"{API}/event-types/order.created/").json()
    assert order["version"] == 2
    assert [entry["version"] for entry in order["versions"]] == [1, 2]
    assert order["versions"][0]["schema"] == V1_SCHEMA and order["versions"][0]["description"] == "total as a string"
    assert order["versions"][1]["example"] == V2_DATA == order["example"]
    assert "converter" not in order["versions"][0]
    updated = client.get(f"{API}/event-types/order.updated/").json()
    assert updated["version"] == 1 and [entry["version"] for entry in updated["versions"]] == [1]


def test_a_new_subscription_pins_the_current_versions(client, receiver, order_v2):
    response = create(client, receiver)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["payload_format"] == "standard"
    assert body["event_versions"] == {"order.created": 2, "order.deleted": 1, "order.updated": 1}
    assert Subscription.objects.get().event_versions == body["event_versions"]


def test_a_pin_and_a_format_chosen_on_creation(client, receiver, order_v2):
    response = create(client, receiver, payload_format="cloudevents_binary", event_versions={"order.created": 1})
    assert response.status_code == 201, response.json()
    subscription = Subscription.objects.get()
    assert subscription.payload_format == PayloadFormat.CLOUDEVENTS_BINARY
    assert subscription.event_versions == {"order.created": 1, "order.deleted": 1, "order.updated": 1}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"event_versions": {"order.created": 3}}, "order.created has no version 3; its versions are 1, 2."),
        ({"event_versions": {"nope.nope": 1}}, "Unknown event type: nope.nope is not in the event catalog."),
        ({"event_versions": {"order.created": 0}}, "Ensure this value is greater than or equal to 1."),
        ({"event_versions": {"order.created": "v1"}}, "A valid integer is required."),
        ({"event_versions": [1]}, 'Expected a dictionary of items but got type "list".'),
        ({"payload_format": "xml"}, "Use one of: standard, cloudevents, cloudevents_binary."),
    ],
)
def test_bad_formats_and_pins_are_400s_with_field_messages(client, receiver, order_v2, fields, message):
    response = create(client, receiver, **fields)
    assert response.status_code == 400
    [field] = fields
    assert message in str(response.json()[field]), response.json()
    assert not Subscription.objects.exists()


def test_changing_event_types_pins_only_the_types_added(client, receiver, order_v2, settings):
    response = create(client, receiver, event_types=["order.updated"])
    subscription_url = f"{API}/subscriptions/{response.json()['id']}/"
    assert response.json()["event_versions"] == {"order.updated": 1}
    response = client.patch(subscription_url, {"event_types": ["order.updated", "order.created"]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["event_versions"] == {"order.created": 2, "order.updated": 1}
    response = client.patch(subscription_url, {"event_versions": {"order.created": 1}}, format="json")
    assert response.json()["event_versions"] == {"order.created": 1, "order.updated": 1}
    response = client.patch(subscription_url, {"description": "unchanged pins"}, format="json")
    assert response.json()["event_versions"] == {"order.created": 1, "order.updated": 1}

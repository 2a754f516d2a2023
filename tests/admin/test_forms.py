"""The admin forms (django_webhooks/admin/forms.py): subscriptions, and an event type's schema and example."""

from __future__ import annotations

import socket

import pytest
from django.test.utils import override_settings

from django_webhooks import secret_store
from django_webhooks.models import EventType, Subscription
from tests.admin import url

pytestmark = pytest.mark.django_db


def fake_resolver(host, port, *args, **kwargs):
    """Resolves every host name to the cloud metadata address."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]


# --- subscription form ------------------------------------------------------------------------


def form_data(**overrides) -> dict:
    data = {
        "owner_id": "",
        "url": "http://127.0.0.1:9/hook",
        "description": "ERP",
        "event_types": "order.created\norder.*",
        "filters": "{}",
        "headers": '{"X-Team": "billing"}',
        "max_in_flight": "",
        "rate_limit": "",
    }
    data.update(overrides)
    return data


def test_add_subscription_creates_it_with_a_secret(admin_client):
    response = admin_client.post(url("subscription_add"), form_data())
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription = Subscription.objects.get()
    assert subscription.event_types == ["order.created", "order.*"]
    assert subscription.headers == {"X-Team": "billing"}
    assert secret_store.current_secret(subscription).startswith("whsec_")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "http://10.0.0.8/hook", "Webhooks cannot be sent to this URL"),
        ("url", "http://169.254.169.254/latest/meta-data", "Webhooks cannot be sent to this URL"),
        ("url", "ftp://example.com/hook", "Webhooks cannot be sent to this URL"),
        ("url", "http://user:pw@127.0.0.1/hook", "user name or password"),
        ("event_types", "order.created\ninvoice.paid", "invoice.paid is not in the event catalog"),
        ("event_types", "order..created", "is not a valid event type or pattern"),
        ("event_types", "", "This field is required"),
        ("headers", '{"Webhook-Signature": "forged"}', "Webhook-Signature is set by django-webhooks"),
        ("headers", '{"Content-Type": "text/plain"}', "cannot be overridden"),
        ("headers", '{"Upgrade": "h2c"}', "cannot be overridden"),
        ("headers", '{"Bad Header": "x"}', "is not a valid header name"),
        ("headers", '["X-Team"]', "must be a JSON object"),
        ("headers", '{"X-Team": 5}', "must be a string"),
        ("headers", "{not json", "Enter a valid JSON"),
        ("filters", "[1]", "Filters must be a JSON object"),
    ],
)
def test_subscription_form_errors(admin_client, field, value, message):
    response = admin_client.post(url("subscription_add"), form_data(**{field: value}))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors
    assert message in " ".join(errors[field])
    assert not Subscription.objects.exists()


@override_settings(DJANGO_WEBHOOKS={"RESOLVER": "tests.admin.test_forms.fake_resolver", "REQUIRE_HTTPS": False})
def test_subscription_form_refuses_a_host_that_resolves_to_a_private_address(admin_client):
    response = admin_client.post(url("subscription_add"), form_data(url="http://hooks.example.net/in"))
    errors = response.context["adminform"].form.errors
    assert "Webhooks cannot be sent to this URL" in errors["url"][0]
    assert "169.254.169.254" in errors["url"][0]


def test_subscription_form_refuses_new_subscriptions_to_archived_types(admin_client, make_subscription):
    EventType.objects.create(name="order.refunded", archived=True)
    response = admin_client.post(url("subscription_add"), form_data(event_types="order.refunded"))
    assert "archived" in response.context["adminform"].form.errors["event_types"][0]
    existing = make_subscription(event_types=["order.refunded"])
    response = admin_client.post(url("subscription_change", existing.pk), form_data(event_types="order.refunded"))
    assert response.status_code == 302


def test_subscription_form_accepts_catalog_rows_and_wildcards(admin_client):
    EventType.objects.create(name="invoice.paid")
    response = admin_client.post(url("subscription_add"), form_data(event_types="invoice.paid, invoice.*, *"))
    assert response.status_code == 302
    assert Subscription.objects.get().event_types == ["invoice.paid", "invoice.*", "*"]


# --- event type form --------------------------------------------------------------------------


def test_event_type_form_validates_schema_and_example(admin_client):
    data = {"name": "order.paid", "description": "", "schema": '{"type": "nope"}', "example": "{}"}
    errors = admin_client.post(url("eventtype_add"), data).context["adminform"].form.errors
    assert "Not a valid JSON Schema" in errors["schema"][0]
    data["schema"] = '{"type": "object", "required": ["id"]}'
    errors = admin_client.post(url("eventtype_add"), data).context["adminform"].form.errors
    assert "does not match the schema" in errors["example"][0] and "'id' is a required property" in errors["example"][0]
    data["example"] = '{"id": 1}'
    assert admin_client.post(url("eventtype_add"), data).status_code == 302
    assert EventType.objects.get().example == {"id": 1}

"""The portal's forms (django_webhooks/portal/forms.py): the API's validation, shown on the form's fields."""

from __future__ import annotations

import pytest

from django_webhooks import secret_store
from django_webhooks.portal import forms as portal_forms
from django_webhooks.portal.forms import RecoverForm, SubscriptionForm

pytestmark = pytest.mark.django_db


def form(**data):
    fields = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"], "payload_format": "standard"}
    fields.update(data)
    return SubscriptionForm(fields)


def test_a_valid_form_creates_an_endpoint_with_a_secret(alice):
    subscription_form = form(patterns="order.*", headers="X-Team: billing\n\n", filters='{"status": "paid"}')
    assert subscription_form.is_valid(), subscription_form.errors
    subscription = subscription_form.save(str(alice.pk))
    assert subscription.owner_id == str(alice.pk)
    assert subscription.event_types == ["order.created", "order.*"]
    assert subscription.headers == {"X-Team": "billing"}
    assert subscription.filters == {"status": "paid"}
    assert subscription.event_versions == {"order.created": 1, "order.deleted": 1, "order.updated": 1}
    assert secret_store.current_secret(subscription).startswith("whsec_")


@pytest.mark.parametrize(
    "data,field,message",
    [
        ({"url": "http://10.1.2.3/hook"}, "url", "private"),
        ({"url": "ftp://127.0.0.1/hook"}, "url", "http"),
        ({"event_types": [], "patterns": "nosuch.*"}, "event_types", "matches no event type"),
        ({"event_types": [], "patterns": ""}, "event_types", "at least 1"),
        ({"patterns": "order.created"}, "event_types", "once"),
        ({"headers": "no colon here"}, "headers", "Line 1"),
        ({"headers": "webhook-id: mine"}, "headers", "webhook-id"),
        ({"filters": "{not json"}, "filters", "Not valid JSON"),
        ({"filters": "[1]"}, "filters", "JSON object"),
    ],
)
def test_the_api_rules_show_on_the_field(data, field, message):
    subscription_form = form(**data)
    assert not subscription_form.is_valid()
    assert message.lower() in " ".join(subscription_form.errors[field]).lower(), subscription_form.errors


def test_an_edit_form_starts_from_the_endpoint_and_keeps_its_patterns(alice_endpoint):
    alice_endpoint.event_types = ["order.created", "order.*"]
    alice_endpoint.headers = {"X-Team": "billing"}
    edit = SubscriptionForm(instance=alice_endpoint)
    assert edit.initial["event_types"] == ["order.created"]
    assert edit.initial["patterns"] == "order.*"
    assert edit.initial["headers"] == "X-Team: billing"


def test_an_archived_type_stays_offered_to_the_endpoint_that_has_it(alice_endpoint):
    from django_webhooks.models import EventType

    EventType.objects.create(name="invoice.paid", archived=True)
    assert "invoice.paid" not in dict(SubscriptionForm().fields["event_types"].choices)
    alice_endpoint.event_types = ["invoice.paid"]
    assert "invoice.paid" in dict(SubscriptionForm(instance=alice_endpoint).fields["event_types"].choices)


def test_recover_refuses_a_time_in_the_future():
    recover = RecoverForm({"since": "2999-01-01T00:00"})
    assert not recover.is_valid()
    assert "future" in " ".join(recover.errors["since"])


def test_a_test_event_gets_its_types_example():
    test = portal_forms.TestEventForm({"event_type": "order.created"})
    assert test.is_valid(), test.errors
    assert test.validated_data["data"]["number"] == "A-1001"
    assert not portal_forms.TestEventForm({"event_type": "nosuch.type"}).is_valid()

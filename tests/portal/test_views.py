"""The portal's pages through the Django test client, as a browser without JavaScript uses them."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.test import override_settings
from django.utils import timezone

from django_webhooks import receiving, secret_store
from django_webhooks.delivery import attempt_stats
from django_webhooks.models import AuditAction, AuditLogEntry, Delivery, DeliveryAttempt, DeliveryStatus, Subscription
from django_webhooks.portal.event_types import SAMPLE_SECRET, schema_rows
from tests.admin import add_attempt
from tests.portal import messages_of, url
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


def audit_actions() -> list[str]:
    return list(AuditLogEntry.objects.order_by("id").values_list("action", flat=True))


def test_anonymous_visitors_go_to_the_hosts_login(client):
    response = client.get(url("endpoints"))
    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


def test_a_user_without_an_owner_gets_a_page_that_says_so(alice_client):
    hooks = {**settings.DJANGO_WEBHOOKS, "OWNER_RESOLVER": "tests.portal.test_views.no_owner"}
    with override_settings(DJANGO_WEBHOOKS=hooks):
        response = alice_client.get(url("endpoints"))
    assert response.status_code == 403
    assert "not linked to a webhook owner" in response.content.decode()


def no_owner(request):
    return None


def test_every_page_is_private_and_frameable_by_this_site_only(alice_client, alice_endpoint):
    response = alice_client.get(url("endpoint", alice_endpoint.pk))
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_the_list_shows_only_the_owners_endpoints_with_their_health(
    alice_client, alice_endpoint, bob_endpoint, alice_delivery
):
    page = alice_client.get(url("endpoints")).content.decode()
    assert "Alice ERP" in page
    assert "Bob shop" not in page
    assert "0 %" in page  # one failed attempt in the last 24 hours


def test_create_an_endpoint(alice, alice_client):
    response = alice_client.post(
        url("endpoint-create"),
        {"url": "http://127.0.0.1:9/new", "event_types": ["order.created"], "payload_format": "standard"},
    )
    subscription = Subscription.objects.get(url="http://127.0.0.1:9/new")
    assert response["Location"] == url("endpoint", subscription.pk)
    assert subscription.owner_id == str(alice.pk)
    entry = AuditLogEntry.objects.get()
    assert (entry.action, entry.object_id, entry.actor) == (
        AuditAction.SUBSCRIPTION_CREATED,
        str(subscription.pk),
        f"alice (user #{alice.pk})",
    )
    assert entry.actor_user_id == str(alice.pk)


def test_an_invalid_endpoint_is_shown_again_with_the_apis_messages(alice_client):
    response = alice_client.post(
        url("endpoint-create"), {"url": "http://10.0.0.1/x", "event_types": [], "payload_format": "standard"}
    )
    assert response.status_code == 400
    page = response.content.decode()
    assert 'aria-invalid="true"' in page
    assert not Subscription.objects.exists()


def test_edit_records_what_changed(alice_client, alice_endpoint):
    response = alice_client.post(
        url("endpoint-edit", alice_endpoint.pk),
        {
            "url": alice_endpoint.url,
            "description": "Alice ERP (prod)",
            "event_types": ["order.created"],
            "payload_format": "standard",
        },
    )
    assert response.status_code == 302
    alice_endpoint.refresh_from_db()
    assert alice_endpoint.event_types == ["order.created"]
    entry = AuditLogEntry.objects.get(action=AuditAction.SUBSCRIPTION_UPDATED)
    assert entry.changes["description"] == ["Alice ERP", "Alice ERP (prod)"]
    assert entry.changes["event_types"] == [["order.*"], ["order.created"]]
    assert "url" not in entry.changes


def test_delete_asks_first_then_deletes(alice_client, alice_endpoint, alice_delivery):
    confirm = alice_client.get(url("endpoint-delete", alice_endpoint.pk))
    assert "1 delivery" in confirm.content.decode()
    assert Subscription.objects.filter(pk=alice_endpoint.pk).exists()
    response = alice_client.post(url("endpoint-delete", alice_endpoint.pk))
    assert response["Location"] == url("endpoints")
    assert not Subscription.objects.filter(pk=alice_endpoint.pk).exists()
    entry = AuditLogEntry.objects.get()
    assert entry.action == AuditAction.SUBSCRIPTION_DELETED
    assert entry.object_repr.startswith("http://127.0.0.1:9/alice")


def test_disable_and_enable(alice_client, alice_endpoint):
    alice_client.post(url("endpoint-disable", alice_endpoint.pk), {"reason": "maintenance"})
    alice_endpoint.refresh_from_db()
    assert (alice_endpoint.enabled, alice_endpoint.disabled_reason) == (False, "maintenance")
    assert "Disabled: maintenance" in alice_client.get(url("endpoint", alice_endpoint.pk)).content.decode()
    alice_client.post(url("endpoint-enable", alice_endpoint.pk))
    alice_endpoint.refresh_from_db()
    assert alice_endpoint.enabled
    assert audit_actions() == [AuditAction.SUBSCRIPTION_DISABLED, AuditAction.SUBSCRIPTION_ENABLED]


def test_the_secret_shows_only_after_a_post(alice_client, alice_endpoint):
    secret = secret_store.current_secret(alice_endpoint)
    for page in ("endpoint", "secret", "endpoint-edit"):
        assert secret not in alice_client.get(url(page, alice_endpoint.pk)).content.decode()
    revealed = alice_client.post(url("secret", alice_endpoint.pk))
    assert secret in revealed.content.decode()
    assert "no-store" in revealed["Cache-Control"]
    assert audit_actions() == [AuditAction.SECRET_REVEALED]


def test_rotate_keeps_the_old_secret_signing_for_the_overlap(alice_client, alice_endpoint):
    before = secret_store.current_secret(alice_endpoint)
    response = alice_client.post(url("secret-rotate", alice_endpoint.pk))
    assert response["Location"] == url("secret", alice_endpoint.pk)
    assert "keeps signing too until" in messages_of(response)[0]
    after = secret_store.current_secret(alice_endpoint)
    assert after != before
    assert secret_store.signing_secrets(alice_endpoint) == [after, before]
    assert after not in alice_client.get(url("secret", alice_endpoint.pk)).content.decode()
    assert AuditLogEntry.objects.get().changes == {
        "overlap_seconds": settings.DJANGO_WEBHOOKS.get("SECRET_ROTATION_OVERLAP", 86400)
    }


def test_a_test_event_reaches_the_receiver_and_shows_its_attempt(alice, alice_client, receiver, make_subscription):
    endpoint = make_subscription(receiver.url("/hook"), owner_id=str(alice.pk))
    response = alice_client.post(url("endpoint-test", endpoint.pk), {"event_type": "order.created"})
    delivery = Delivery.objects.get(subscription=endpoint)
    assert response["Location"] == url("delivery", delivery.pk)
    assert re.fullmatch(r"Test event delivered: HTTP 200 in \d+ ms\.", messages_of(response)[0])
    arrived = receiver.wait_for(1)[0]
    receiving.verify(arrived.headers, arrived.body, secret_store.current_secret(endpoint))
    assert b'"number":"A-1001"' in arrived.body
    page = alice_client.get(url("delivery", delivery.pk)).content.decode()
    assert "Attempt 1" in page
    assert "HTTP 200" in page
    assert AuditLogEntry.objects.get().action == AuditAction.TEST_EVENT_SENT


def test_a_failed_test_event_says_how_and_that_it_is_retried(alice, alice_client, receiver, make_subscription):
    receiver.script = [Reply(503, b"down for maintenance")]
    endpoint = make_subscription(receiver.url("/hook"), owner_id=str(alice.pk))
    response = alice_client.post(url("endpoint-test", endpoint.pk), {"event_type": "order.created"})
    [message] = get_messages(response.wsgi_request)
    assert message.level_tag == "error"
    assert re.fullmatch(
        r"The test event failed: HTTP 503 in \d+ ms \(HTTP 503\.\)\. It is retried like any delivery\.", str(message)
    )


def test_the_endpoint_page_charts_24_hours_by_hour_and_30_days_by_day(alice_client, alice_endpoint, make_delivery):
    delivery, now = make_delivery(alice_endpoint), timezone.now()
    add_attempt(delivery, attempt_number=1, created_at=now)
    add_attempt(delivery, attempt_number=2, succeeded=False, status=503, created_at=now - timedelta(days=3))
    add_attempt(delivery, attempt_number=3, created_at=now - timedelta(days=40))
    attempt_stats.add(list(DeliveryAttempt.objects.all()))
    page = alice_client.get(url("endpoint", alice_endpoint.pk)).content.decode()
    day, month = page.split('id="chart-24h"')[1].split('id="chart-30d"')
    assert "1 attempts: 1 succeeded, 0 failed." in day and "Delivery attempts, last 24 hours" in day
    assert "2 attempts: 1 succeeded, 1 failed." in month and "Response time percentiles, last 30 days" in month
    assert day.count("<g><title>") == 24 and month.count("<g><title>") == 30  # a bar per hour, per day


def test_recover_queues_failed_deliveries_since_a_time(alice_client, alice_endpoint, alice_delivery):
    since = timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    response = alice_client.post(url("endpoint-recover", alice_endpoint.pk), {"since": since})
    assert messages_of(response) == ["Queued 1 failed deliveries again."]
    alice_delivery.refresh_from_db()
    assert alice_delivery.status == DeliveryStatus.PENDING
    assert AuditLogEntry.objects.get().changes["recovered"] == 1


def test_resend_queues_the_delivery_again(alice_client, alice_delivery):
    response = alice_client.post(url("delivery-resend", alice_delivery.pk))
    assert response["Location"] == url("delivery", alice_delivery.pk)
    alice_delivery.refresh_from_db()
    assert alice_delivery.status == DeliveryStatus.PENDING
    entry = AuditLogEntry.objects.get()
    assert (entry.action, entry.object_type, entry.object_repr) == (
        AuditAction.DELIVERY_RESENT,
        "delivery",
        alice_delivery.message_id,
    )


def test_the_delivery_page_shows_the_attempt_timeline(alice_client, alice_delivery):
    page = alice_client.get(url("delivery", alice_delivery.pk)).content.decode()
    assert "HTTP 500" in page
    assert "X-Team: billing" in page
    assert "boom" in page
    assert alice_delivery.event.body.replace('"', "&quot;") in page


@pytest.fixture
def log(alice_endpoint, make_delivery):
    old = make_delivery(alice_endpoint, status=DeliveryStatus.SUCCEEDED, event_type="order.updated")
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=10))
    failed = make_delivery(alice_endpoint, status=DeliveryStatus.FAILED)
    return {"old": old, "failed": failed}


@pytest.mark.parametrize(
    "query,expected",
    [
        ({"status": "failed"}, {"failed"}),
        ({"event_type": "order.updated"}, {"old"}),
        ({"since": (timezone.now() - timedelta(days=1)).date().isoformat()}, {"failed"}),
        ({"until": (timezone.now() - timedelta(days=5)).date().isoformat()}, {"old"}),
        ({}, {"old", "failed"}),
    ],
)
def test_the_log_filters(alice_client, log, query, expected):
    response = alice_client.get(url("deliveries"), query)
    shown = {name for name, delivery in log.items() if delivery in response.context["deliveries"]}
    assert shown == expected


def test_the_log_finds_a_delivery_by_event_id_and_by_message_id(alice_client, log, bob_delivery):
    failed = log["failed"]
    by_event = alice_client.get(url("deliveries"), {"q": str(failed.event_id)})
    assert list(by_event.context["deliveries"]) == [failed]
    by_message = alice_client.get(url("deliveries"), {"q": failed.message_id[:12]})
    assert failed in by_message.context["deliveries"]
    assert bob_delivery not in by_message.context["deliveries"]
    assert list(alice_client.get(url("deliveries"), {"q": str(bob_delivery.event_id)}).context["deliveries"]) == []


def test_an_unreadable_search_says_why(alice_client, log):
    response = alice_client.get(url("deliveries"), {"q": "{not json"})
    assert response.status_code == 200
    assert "not a valid JSON object" in response.content.decode()


def test_htmx_gets_only_the_results(alice_client, log):
    response = alice_client.get(
        url("deliveries"), {"status": "failed"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="delivery-log"
    )
    page = response.content.decode()
    assert log["failed"].message_id in page
    assert "<html" not in page


def test_the_log_pages_without_counting(alice_client, alice_endpoint, make_delivery, monkeypatch):
    from django_webhooks.portal import deliveries

    monkeypatch.setattr(deliveries, "PAGE_SIZE", 2)
    made = [make_delivery(alice_endpoint) for _ in range(3)]
    first = alice_client.get(url("deliveries"))
    assert list(first.context["deliveries"]) == [made[2], made[1]]
    second = alice_client.get(url("deliveries") + "?" + first.context["older_query"])
    assert list(second.context["deliveries"]) == [made[0]]
    assert second.context["older_query"] is None


def test_the_catalog_shows_each_type_with_a_sample_that_verifies(alice_client):
    response = alice_client.get(url("event-types"))
    page = response.content.decode()
    assert "order.created" in page
    assert "An order was placed." in page
    sample = next(entry for entry in response.context["entries"] if entry["name"] == "order.created")["sample"]
    receiving.verify(sample["headers"], sample["body"].encode(), SAMPLE_SECRET)
    assert '"number":"A-1001"' in sample["body"]
    assert sample["headers"]["Content-Type"] == "application/json"


def test_the_catalog_names_the_older_versions_an_endpoint_can_stay_on(alice_client, settings):
    from tests.delivery.test_formats import use_catalog, version_2

    use_catalog(settings, version_2())
    page = alice_client.get(url("event-types")).content.decode()
    assert "Current version: 2" in page
    assert "An endpoint can stay on an older one: 1." in page


def test_schema_rows_flatten_nested_objects_and_arrays():
    schema = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "integer", "description": "The order's id."},
            "status": {"enum": ["new", "paid"]},
            "customer": {"type": "object", "properties": {"email": {"type": "string", "format": "email"}}},
            "lines": {
                "type": "array",
                "items": {"type": "object", "properties": {"sku": {"type": ["string", "null"]}}},
            },
        },
    }
    rows = {row.path: row for row in schema_rows(schema)}
    assert list(rows) == ["id", "status", "customer", "customer.email", "lines", "lines[].sku"]
    assert rows["id"].required and not rows["status"].required
    assert rows["status"].constraints == 'one of "new", "paid"'
    assert rows["customer.email"].constraints == "format: email"
    assert rows["lines[].sku"].type == "string | null"
    assert schema_rows({"type": "object", "properties": {"x": {"$ref": "#/defs/x"}}})[0].type == "any"


def test_the_api_rates_apply_per_owner(alice_client, bob_client, alice_endpoint):
    hooks = {**settings.DJANGO_WEBHOOKS, "API_THROTTLE_RATES": {"webhooks": "2/min", "webhooks_actions": "1/min"}}
    with override_settings(DJANGO_WEBHOOKS=hooks):
        codes = [alice_client.get(url("endpoints")).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        assert int(alice_client.get(url("endpoints"))["Retry-After"]) > 0
        assert bob_client.get(url("endpoints")).status_code == 200


def test_actions_have_the_stricter_rate(alice_client, alice_endpoint):
    hooks = {**settings.DJANGO_WEBHOOKS, "API_THROTTLE_RATES": {"webhooks": None, "webhooks_actions": "1/min"}}
    with override_settings(DJANGO_WEBHOOKS=hooks):
        assert alice_client.post(url("secret-rotate", alice_endpoint.pk)).status_code == 302
        assert alice_client.post(url("secret-rotate", alice_endpoint.pk)).status_code == 429
        assert alice_client.get(url("secret", alice_endpoint.pk)).status_code == 200
    assert AuditLogEntry.objects.filter(action=AuditAction.SECRET_ROTATED).count() == 1


def test_every_form_needs_its_csrf_token(alice, alice_endpoint):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(url("endpoint-disable", alice_endpoint.pk)).status_code == 403
    alice_endpoint.refresh_from_db()
    assert alice_endpoint.enabled


def test_pages_are_translated(alice_client, alice_endpoint):
    from django.utils import translation

    with translation.override("de"):
        page = alice_client.get(url("endpoint", alice_endpoint.pk)).content.decode()
        refused = alice_client.get(url("enter", "nonsense")).content.decode()
    assert "Testereignis senden" in page
    assert "Signaturschlüssel" in page
    assert "Dieser Link ist ungültig" in refused

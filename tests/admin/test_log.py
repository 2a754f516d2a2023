"""The delivery log admins (django_webhooks/admin/log.py): events, deliveries, attempts, resending, permissions."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, ErrorClass, Event
from tests.admin import SIGNATURE, _bulk_log, _queries, action, add_attempt, changelist_rows, messages_of, url

pytestmark = pytest.mark.django_db


# --- lists ------------------------------------------------------------------------------------


def test_delivery_list_shows_event_type_subscription_and_owner(admin_client, log):
    html = admin_client.get(url("delivery_changelist")).content.decode()
    assert log["ok"].message_id in html
    assert "order.created" in html
    assert "http://127.0.0.1:9/acme" in html
    assert "acme-shop" in html


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status__exact=succeeded", {"ok"}),
        ("status__exact=failed", {"failed"}),
        ("event_type=order.deleted", {"old"}),
        ("subscription={globex}", {"failed"}),
        ("owner={owner}", {"ok"}),
        ("owner=__none__", {"old"}),
        ("created_at__year={last_year}", {"old"}),
    ],
)
def test_delivery_filters(admin_client, log, owner, query, expected):
    last_year = timezone.localtime(log["old"].created_at).year
    query = query.format(globex=log["globex"].pk, owner=owner.pk, last_year=last_year)
    response = admin_client.get(url("delivery_changelist") + "?" + query)
    assert response.status_code == 200
    assert {d.pk for d in changelist_rows(response)} == {log[name].pk for name in expected}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("succeeded__exact=1", {"ok"}),
        ("succeeded__exact=0", {"failed"}),
        ("error_class__exact=http_status", {"failed"}),
        ("subscription={acme}", {"ok"}),
        ("owner={other}", {"failed"}),
    ],
)
def test_attempt_filters(admin_client, log, other_owner, query, expected):
    query = query.format(acme=log["acme"].pk, other=other_owner.pk)
    response = admin_client.get(url("deliveryattempt_changelist") + "?" + query)
    assert {a.delivery_id for a in changelist_rows(response)} == {log[name].pk for name in expected}


@pytest.mark.parametrize(
    ("query", "expected"),
    [("event_type=order.deleted", {"old"}), ("event_type=order.created", {"ok", "failed"})],
)
def test_event_filters(admin_client, log, query, expected):
    response = admin_client.get(url("event_changelist") + "?" + query)
    assert {e.pk for e in changelist_rows(response)} == {log[name].event_id for name in expected}


def test_test_events_are_a_choice_of_the_event_type_filters(admin_client, log, make_delivery):
    test_delivery = make_delivery(log["acme"], event_type="webhook.test")
    deliveries = admin_client.get(url("delivery_changelist"), {"event_type": "webhook.test"})
    assert "?event_type=webhook.test" in deliveries.content.decode()  # offered, not only accepted
    assert [d.pk for d in changelist_rows(deliveries)] == [test_delivery.pk]
    events = admin_client.get(url("event_changelist"), {"event_type": "webhook.test"})
    assert "?event_type=webhook.test" in events.content.decode()
    assert [e.pk for e in changelist_rows(events)] == [test_delivery.event_id]


def test_event_owner_filter(admin_client, owner):
    mine = Event.objects.create(event_type="order.created", payload={}, owner_id=str(owner.pk))
    Event.objects.create(event_type="order.created", payload={})
    response = admin_client.get(url("event_changelist") + f"?owner={owner.pk}")
    assert [e.pk for e in changelist_rows(response)] == [mine.pk]


# --- times ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_log_lists_show_times_to_the_second(admin_client, log, model):
    moment = timezone.make_aware(datetime(2030, 5, 6, 7, 8, 9))
    Event.objects.update(created_at=moment)
    Delivery.objects.update(created_at=moment)
    DeliveryAttempt.objects.update(created_at=moment)
    html = admin_client.get(url(f"{model}_changelist")).content.decode()
    assert "2030-05-06 07:08:09" in html


def test_the_attempt_timeline_shows_seconds_and_the_time_since_the_delivery(admin_client, log):
    delivery = log["failed"]
    created = delivery.created_at.replace(microsecond=0)
    Delivery.objects.filter(pk=delivery.pk).update(created_at=created)
    DeliveryAttempt.objects.filter(delivery=delivery).update(created_at=created + timedelta(seconds=1))
    retry = add_attempt(
        delivery, attempt_number=3, succeeded=False, status=503, created_at=created + timedelta(seconds=6)
    )
    add_attempt(delivery, attempt_number=4, created_at=created + timedelta(minutes=2, seconds=5))
    html = admin_client.get(url("delivery_change", delivery.pk)).content.decode()
    for offset, relative in ((1, "+1 s"), (6, "+6 s"), (125, "+2 min 5 s")):
        moment = timezone.localtime(created + timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S")
        assert moment in html and relative in html
    attempt_html = admin_client.get(url("deliveryattempt_change", retry.pk))
    assert "+6 s" in attempt_html.content.decode()


# --- search -----------------------------------------------------------------------------------


def test_delivery_and_attempt_search_by_message_id(admin_client, log):
    message_id = log["failed"].message_id
    deliveries = admin_client.get(url("delivery_changelist"), {"q": message_id})
    assert [d.pk for d in changelist_rows(deliveries)] == [log["failed"].pk]
    attempts = admin_client.get(url("deliveryattempt_changelist"), {"q": message_id})
    assert [a.delivery_id for a in changelist_rows(attempts)] == [log["failed"].pk]


def test_event_search_by_idempotency_key(admin_client):
    event = Event.objects.create(event_type="order.created", payload={}, idempotency_key="order-42-created")
    Event.objects.create(event_type="order.created", payload={})
    response = admin_client.get(url("event_changelist"), {"q": "order-42-created"})
    assert [e.pk for e in changelist_rows(response)] == [event.pk]


# --- query counts -----------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["delivery", "deliveryattempt", "event"])
def test_log_list_queries_do_not_grow_with_the_table(admin_client, make_subscription, owner, model):
    subscriptions = [
        make_subscription(f"http://127.0.0.1:9/{n}", owner_id=str(owner.pk) if n % 2 else None) for n in range(5)
    ]
    _bulk_log(subscriptions, 10)
    path = url(f"{model}_changelist")
    admin_client.get(path)
    with_ten = _queries(admin_client, path)
    _bulk_log(subscriptions, 990)
    assert _queries(admin_client, path) == with_ten
    assert _queries(admin_client, path + "?status__exact=pending" if model == "delivery" else path) <= with_ten + 1


# --- deliveries -------------------------------------------------------------------------------


def test_delivery_page_shows_payload_and_every_attempt_without_secrets(admin_client, log):
    delivery = log["failed"]
    add_attempt(
        delivery, attempt_number=2, succeeded=False, status=None, error_class=ErrorClass.TIMEOUT, duration_ms=15000
    )
    html = admin_client.get(url("delivery_change", delivery.pk)).content.decode()
    assert "&quot;data&quot;: {" in html  # the body, indented
    assert "HTTP error status" not in html or "500" in html
    assert "500" in html and "timeout" in html and "15000" in html
    assert "X-Team" in html and "billing" in html
    assert SIGNATURE not in html and "c2lnbmF0dXJl" not in html
    assert "1 signature, hidden" in html
    assert "x" * 2000 in html and "x" * 2001 not in html and "3000 more characters" in html
    assert url("delivery_resend", delivery.pk) in html


def test_resend_button(admin_client, log):
    delivery = log["failed"]
    response = admin_client.post(url("delivery_resend", delivery.pk), follow=True)
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.PENDING
    assert messages_of(response) == [f"Queued {delivery.message_id} to be sent again."]


def test_resend_action(admin_client, log):
    response = action(admin_client, "resend_deliveries", [log["failed"], log["old"]], model="delivery")
    assert set(Delivery.objects.filter(pk__in=[log["failed"].pk, log["old"].pk]).values_list("status", flat=True)) == {
        DeliveryStatus.PENDING
    }
    assert messages_of(response) == ["Queued 2 deliveries to be sent again."]


def test_event_and_attempt_pages(admin_client, log):
    event_html = admin_client.get(url("event_change", log["ok"].event_id)).content.decode()
    assert "&quot;n&quot;:" in event_html
    attempt = DeliveryAttempt.objects.get(delivery=log["failed"])
    attempt_html = admin_client.get(url("deliveryattempt_change", attempt.pk)).content.decode()
    assert "500" in attempt_html and SIGNATURE not in attempt_html


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_log_is_read_only_even_for_superusers(admin_client, log, model):
    assert admin_client.get(url(f"{model}_add")).status_code == 403
    obj = {"event": log["ok"].event, "delivery": log["ok"], "deliveryattempt": log["ok"].delivery_attempts.get()}[model]
    html = admin_client.get(url(f"{model}_change", obj.pk)).content.decode()
    assert 'name="_save"' not in html


# --- permissions ------------------------------------------------------------------------------


def test_staff_without_change_delivery_cannot_resend(staff, log):
    client = staff("view_delivery")
    html = client.get(url("delivery_change", log["failed"].pk)).content.decode()
    assert url("delivery_resend", log["failed"].pk) not in html
    assert client.post(url("delivery_resend", log["failed"].pk)).status_code == 403
    action(client, "resend_deliveries", [log["failed"]], model="delivery")
    assert Delivery.objects.get(pk=log["failed"].pk).status == DeliveryStatus.FAILED


def test_staff_with_change_delivery_can_resend(staff, log):
    client = staff("view_delivery", "change_delivery")
    assert client.post(url("delivery_resend", log["failed"].pk)).status_code == 302
    assert Delivery.objects.get(pk=log["failed"].pk).status == DeliveryStatus.PENDING


def test_delete_with_the_delete_permission(staff, log):
    client = staff("view_delivery", "delete_delivery")
    response = action(client, "delete_selected", [log["old"]], model="delivery", post="yes")
    assert response.status_code == 200
    assert not Delivery.objects.filter(pk=log["old"].pk).exists()


# --- event pages ------------------------------------------------------------------------------


def test_event_page_links_to_its_deliveries(admin_client, log):
    event_html = admin_client.get(url("event_change", log["ok"].event_id)).content.decode()
    link = url("delivery_changelist") + f"?event__id__exact={log['ok'].event_id}"
    assert link in event_html
    assert [d.pk for d in changelist_rows(admin_client.get(link))] == [log["ok"].pk]

"""The subscription admin (django_webhooks/admin/subscriptions.py): list, secret, actions, permissions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from django_webhooks import secret_store
from django_webhooks.models import DeliveryAttempt, DeliveryStatus, Subscription
from tests.admin import _bulk_log, _queries, action, changelist_rows, messages_of, offered_actions, url
from tests.receiver import Reply

pytestmark = pytest.mark.django_db


# --- lists ------------------------------------------------------------------------------------


def test_subscription_list_shows_owner_health_and_event_types(admin_client, log):
    response = admin_client.get(url("subscription_changelist"))
    html = response.content.decode()
    assert "acme-shop" in html and "globex" in html and "staff-managed" in html
    assert "order.*" in html
    assert "100 %" in html  # acme: its only attempt succeeded
    assert "0 %" in html  # globex: its only attempt failed
    assert "closed" in html


# --- filters ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("enabled__exact=1", {"acme", "globex"}),
        ("enabled__exact=0", {"staff"}),
        ("event_type=order.created", {"acme", "globex"}),
        ("event_type=order.deleted", {"acme", "staff"}),
        ("owner=__none__", {"staff"}),
        ("health=failing", {"globex"}),
        ("health=healthy", {"acme", "staff"}),
        ("health=circuit_open", {"globex"}),
    ],
)
def test_subscription_filters(admin_client, log, owner, query, expected):
    Subscription.objects.filter(pk=log["globex"].pk).update(
        consecutive_failures=3, circuit_open_until=timezone.now() + timedelta(minutes=5)
    )
    response = admin_client.get(url("subscription_changelist") + "?" + query)
    assert {s.pk for s in changelist_rows(response)} == {log[name].pk for name in expected}


def test_subscription_owner_filter_lists_owners_by_name(admin_client, log, owner):
    response = admin_client.get(url("subscription_changelist") + f"?owner={owner.pk}")
    assert [s.pk for s in changelist_rows(response)] == [log["acme"].pk]
    assert "acme-shop" in response.content.decode()


def test_wildcard_subscriptions_match_the_event_type_filter(admin_client, make_subscription):
    everything = make_subscription("http://127.0.0.1:9/all", event_types=["*"])
    make_subscription("http://127.0.0.1:9/invoices", event_types=["invoice.paid"])
    response = admin_client.get(url("subscription_changelist") + "?event_type=order.created")
    assert [s.pk for s in changelist_rows(response)] == [everything.pk]


# --- search -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("term", "expected"), [("globex", "globex"), ("Acme ERP", "acme"), ("internal", "staff")])
def test_subscription_search_by_url_and_description(admin_client, log, term, expected):
    response = admin_client.get(url("subscription_changelist"), {"q": term})
    assert [s.pk for s in changelist_rows(response)] == [log[expected].pk]


def test_subscription_search_by_owner_id(admin_client, log, other_owner):
    response = admin_client.get(url("subscription_changelist"), {"q": str(other_owner.pk)})
    assert [s.pk for s in changelist_rows(response)] == [log["globex"].pk]


# --- query counts -----------------------------------------------------------------------------


def test_subscription_list_queries_do_not_grow_with_the_page(admin_client, make_subscription, django_user_model):
    owners = [django_user_model.objects.create_user(f"owner{n}") for n in range(3)]
    for n in range(3):
        make_subscription(f"http://127.0.0.1:9/{n}", owner_id=str(owners[n].pk))
    path = url("subscription_changelist")
    admin_client.get(path)
    with_three = _queries(admin_client, path)
    more = [django_user_model.objects.create_user(f"more{n}") for n in range(40)]
    for n, user in enumerate(more):
        make_subscription(f"http://127.0.0.1:9/more{n}", owner_id=str(user.pk))
    _bulk_log(list(Subscription.objects.all()), 200)
    assert _queries(admin_client, path) == with_three


# --- the secret on the change page ------------------------------------------------------------


def test_change_page_masks_the_secret_with_reveal_and_rotate(admin_client, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert "whsec_••••••••••••" in html
    assert secret not in html  # revealed by its own POST (tests/admin/test_secrets.py)
    assert url("subscription_reveal_secret", subscription.pk) in html
    assert url("subscription_rotate_secret", subscription.pk) in html


def test_rotate_secret_button(admin_client, make_subscription):
    subscription = make_subscription()
    before = secret_store.current_secret(subscription)
    response = admin_client.post(url("subscription_rotate_secret", subscription.pk), follow=True)
    after = secret_store.current_secret(subscription)
    assert after != before
    assert secret_store.signing_secrets(subscription) == [after, before]
    assert "Rotated the signing secret of 1 subscription" in messages_of(response)[0]
    assert admin_client.get(url("subscription_rotate_secret", subscription.pk)).status_code == 405


# --- subscription actions ---------------------------------------------------------------------


def test_send_test_event_action_shows_the_attempt_status(admin_client, make_subscription, receiver):
    receiver.script = [Reply(202)]
    subscription = make_subscription(receiver.url("/hook"))
    response = action(admin_client, "send_test_event", [subscription])
    attempt = DeliveryAttempt.objects.get()
    [message] = messages_of(response)
    assert "HTTP 202" in message
    assert url("delivery_change", attempt.delivery_id) in message
    assert receiver.wait_for(1)[0].headers["webhook-id"] == attempt.delivery.message_id


def test_send_test_event_action_reports_a_failure(admin_client, make_subscription, receiver):
    receiver.script = [Reply(503, body=b"down for maintenance")]
    subscription = make_subscription(receiver.url("/hook"))
    response = action(admin_client, "send_test_event", [subscription])
    [message] = list(get_messages(response.wsgi_request))
    assert "HTTP 503" in str(message)
    assert message.level_tag == "error"


def test_enable_action(admin_client, make_subscription):
    subscription = make_subscription(enabled=False, disabled_reason="gone", consecutive_failures=9)
    response = action(admin_client, "enable_subscriptions", [subscription])
    subscription.refresh_from_db()
    assert subscription.enabled and subscription.consecutive_failures == 0
    assert messages_of(response) == ["Enabled 1 subscription."]


def test_disable_action_asks_for_a_reason(admin_client, make_subscription):
    subscription = make_subscription()
    form = action(admin_client, "disable_subscriptions", [subscription])
    assert form.templates[0].name == "django_webhooks/admin/action_form.html"
    assert 'name="reason"' in form.content.decode()
    missing = action(admin_client, "disable_subscriptions", [subscription], apply="Apply", reason="")
    assert "This field is required" in missing.content.decode()
    assert Subscription.objects.get().enabled
    done = action(admin_client, "disable_subscriptions", [subscription], apply="Apply", reason="Partner asked")
    subscription.refresh_from_db()
    assert not subscription.enabled and subscription.disabled_reason == "Partner asked"
    assert messages_of(done) == ["Disabled 1 subscription: Partner asked"]


def test_rotate_secrets_action(admin_client, make_subscription):
    subscriptions = [make_subscription(), make_subscription()]
    before = [secret_store.current_secret(s) for s in subscriptions]
    response = action(admin_client, "rotate_secrets", subscriptions)
    assert [secret_store.current_secret(s) for s in subscriptions] != before
    assert "Rotated the signing secrets of 2 subscriptions" in messages_of(response)[0]


def test_recover_action_resends_failed_deliveries_since_the_date(admin_client, make_subscription, make_delivery):
    subscription = make_subscription()
    now = timezone.now()
    recent = make_delivery(subscription, status=DeliveryStatus.FAILED, created_at=now - timedelta(hours=1))
    older = make_delivery(subscription, status=DeliveryStatus.EXHAUSTED, created_at=now - timedelta(days=3))
    form = action(admin_client, "recover_subscriptions", [subscription])
    assert 'type="datetime-local"' in form.content.decode()
    future = action(
        admin_client,
        "recover_subscriptions",
        [subscription],
        apply="Apply",
        since=(now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
    )
    assert "in the future" in future.content.decode()
    since = timezone.localtime(now - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    done = action(admin_client, "recover_subscriptions", [subscription], apply="Apply", since=since)
    assert "Queued 1 failed delivery since" in messages_of(done)[0]
    recent.refresh_from_db()
    older.refresh_from_db()
    assert recent.status == DeliveryStatus.PENDING
    assert older.status == DeliveryStatus.EXHAUSTED


# --- permissions ------------------------------------------------------------------------------


CHANGE_ACTIONS = [
    "send_test_event",
    "enable_subscriptions",
    "disable_subscriptions",
    "rotate_secrets",
    "recover_subscriptions",
]


def test_view_only_staff_sees_lists_but_no_change_actions(staff, log):
    client = staff("view_subscription", "view_delivery", "view_event", "view_deliveryattempt")
    response = client.get(url("subscription_changelist"))
    assert response.status_code == 200
    assert not offered_actions(response) & set(CHANGE_ACTIONS)
    before = secret_store.current_secret(log["acme"])
    attempts = DeliveryAttempt.objects.count()
    for name in CHANGE_ACTIONS:
        action(client, name, [log["acme"]], apply="Apply", reason="x", since="2020-01-01T00:00")
    acme = Subscription.objects.get(pk=log["acme"].pk)
    assert acme.enabled and secret_store.current_secret(acme) == before
    assert DeliveryAttempt.objects.count() == attempts
    assert client.post(url("subscription_rotate_secret", acme.pk)).status_code == 403
    assert secret_store.current_secret(acme) == before


def test_view_only_staff_cannot_see_the_secret(staff, log):
    client = staff("view_subscription")
    secret = secret_store.current_secret(log["acme"])
    html = client.get(url("subscription_change", log["acme"].pk)).content.decode()
    assert secret not in html and "Rotate secret" not in html


def test_staff_with_change_permission_can_run_actions(staff, log):
    client = staff("view_subscription", "change_subscription")
    response = action(client, "disable_subscriptions", [log["acme"]], apply="Apply", reason="maintenance")
    assert messages_of(response) == ["Disabled 1 subscription: maintenance"]


# --- health on the change page, select across -------------------------------------------------


def test_change_page_shows_health_and_why_a_subscription_is_disabled(admin_client, log):
    from django_webhooks.delivery import operations

    operations.disable(log["globex"], "Endpoint returns 500 since Monday")
    html = admin_client.get(url("subscription_change", log["globex"].pk)).content.decode()
    assert "disabled" in html and "Endpoint returns 500 since Monday" in html
    assert "success 24 h: 0.0 %" in html
    assert url("delivery_changelist") + f"?subscription={log['globex'].pk}" in html


def test_disable_action_with_select_across(admin_client, log):
    data = {"action": "disable_subscriptions", "_selected_action": [log["acme"].pk], "select_across": "1", "index": 0}
    form = admin_client.post(url("subscription_changelist"), data)
    assert 'name="select_across" value="1"' in form.content.decode()
    admin_client.post(url("subscription_changelist"), {**data, "apply": "Apply", "reason": "migration"})
    assert not Subscription.objects.filter(enabled=True).exists()


# --- activity charts --------------------------------------------------------------------------


def test_change_page_charts_this_endpoint_for_24_hours_and_7_days(admin_client, log, make_delivery):
    from django_webhooks.delivery import attempt_stats
    from tests.admin import add_attempt

    acme, now = log["acme"], timezone.now()
    delivery = make_delivery(acme)
    add_attempt(delivery, attempt_number=1, duration_ms=30, created_at=now)
    add_attempt(delivery, attempt_number=2, succeeded=False, status=503, duration_ms=2000, created_at=now)
    add_attempt(
        delivery,
        attempt_number=3,
        succeeded=False,
        status=None,
        error_class="timeout",
        created_at=now - timedelta(days=3),
    )
    attempt_stats.add(list(DeliveryAttempt.objects.all()))  # globex's failed attempt too: not on acme's page

    html = admin_client.get(url("subscription_change", acme.pk)).content.decode()
    assert html.count('<svg class="dwh-chart"') == 4
    day, week = html.split('id="activity-24h"')[1].split('id="activity-7d"')
    assert "3 attempts (2 succeeded, 1 failed)" in day and "5xx 1" in day and "timeout" not in day
    assert "4 attempts (2 succeeded, 2 failed)" in week and "timeout 1" in week
    assert "Attempts per hour to this endpoint, last 7 days" in week
    assert reverse("admin:django_webhooks_dashboard") + f"?subscription={acme.pk}" in html


def test_change_page_of_an_endpoint_without_attempts_has_empty_charts(admin_client, make_subscription):
    subscription = make_subscription()
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert html.count('<svg class="dwh-chart"') == 4
    assert "0 attempts (0 succeeded, 0 failed)" in html and "Success rate" not in html


# --- tracing opt-in ---------------------------------------------------------------------------


def test_send_traceparent_is_set_on_the_change_form(admin_client, make_subscription):
    subscription = make_subscription(event_types=["order.created"])
    data = {
        "owner_id": "",
        "url": subscription.url,
        "description": "",
        "event_types": "order.created",
        "filters": "{}",
        "headers": "{}",
        "max_in_flight": "",
        "rate_limit": "",
        "send_traceparent": "on",
    }
    response = admin_client.post(url("subscription_change", subscription.pk), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription.refresh_from_db()
    assert subscription.send_traceparent is True
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert 'name="send_traceparent"' in html and "W3C traceparent" in html

"""The signing secret in the subscription admin: never in the change page, revealed by its own POST."""

from __future__ import annotations

import logging

import pytest
from django.contrib.admin.models import LogEntry
from django.test import Client

from django_webhooks import secret_store
from django_webhooks.models import Subscription, SubscriptionSecret
from tests.admin import url

pytestmark = pytest.mark.django_db


def secret_rows():
    return list(SubscriptionSecret.objects.order_by("pk").values_list("pk", "encrypted", "expires_at"))


def test_the_change_page_shows_no_secret_and_writes_nothing(admin_client, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    before = secret_rows()
    response = admin_client.get(url("subscription_change", subscription.pk))
    html = response.content.decode()
    assert response.status_code == 200
    assert secret not in html
    assert secret.removeprefix("whsec_") not in html
    assert 'id="reveal-secret"' in html and url("subscription_reveal_secret", subscription.pk) in html
    assert secret_rows() == before


def test_viewing_a_subscription_without_a_secret_does_not_create_one(admin_client):
    # bulk_create sends no post_save, so this subscription has no secret (as rows loaded in bulk).
    [subscription] = Subscription.objects.bulk_create([Subscription(url="http://127.0.0.1:9/x", event_types=["*"])])
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert "none yet" in html and 'id="reveal-secret"' not in html
    admin_client.get(url("subscription_changelist"))
    assert not SubscriptionSecret.objects.exists()


def test_a_post_reveals_the_secret_and_records_who_did(admin_client, admin_user, make_subscription, caplog):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    with caplog.at_level(logging.INFO, logger="django_webhooks.admin"):
        response = admin_client.post(url("subscription_reveal_secret", subscription.pk))
    assert response.status_code == 200
    assert f'<code class="dwh-secret-value">{secret}</code>' in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    assert any(
        "revealed the signing secret" in record.getMessage() and str(subscription.pk) in record.getMessage()
        for record in caplog.records
    )
    entry = LogEntry.objects.get(object_id=str(subscription.pk))
    assert entry.user_id == admin_user.pk and entry.change_message == "Revealed the signing secret."
    assert secret not in entry.change_message


def test_a_get_of_the_reveal_url_does_not_reveal(admin_client, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    response = admin_client.get(url("subscription_reveal_secret", subscription.pk))
    assert response.status_code == 405
    assert secret not in response.content.decode()
    assert not LogEntry.objects.exists()


def test_the_reveal_needs_a_csrf_token(admin_user, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    response = client.post(url("subscription_reveal_secret", subscription.pk))
    assert response.status_code == 403
    assert secret not in response.content.decode()

    page = client.get(url("subscription_change", subscription.pk))
    token = page.context["csrf_token"]
    response = client.post(url("subscription_reveal_secret", subscription.pk), {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 200 and secret in response.content.decode()


def test_view_only_staff_can_neither_see_nor_reveal_the_secret(staff, make_subscription):
    subscription = make_subscription()
    secret = secret_store.current_secret(subscription)
    client = staff("view_subscription")
    html = client.get(url("subscription_change", subscription.pk)).content.decode()
    assert secret not in html and "Reveal secret" not in html
    response = client.post(url("subscription_reveal_secret", subscription.pk))
    assert response.status_code == 403 and secret not in response.content.decode()


def test_staff_with_change_permission_can_reveal(staff, make_subscription):
    subscription = make_subscription()
    client = staff("view_subscription", "change_subscription")
    response = client.post(url("subscription_reveal_secret", subscription.pk))
    assert secret_store.current_secret(subscription) in response.content.decode()


def test_revealing_a_missing_secret_creates_none(admin_client):
    [subscription] = Subscription.objects.bulk_create([Subscription(url="http://127.0.0.1:9/x", event_types=["*"])])
    response = admin_client.post(url("subscription_reveal_secret", subscription.pk), follow=True)
    assert "no signing secret yet" in response.content.decode()
    assert not SubscriptionSecret.objects.exists()
    # Rotating is the explicit way to give it one.
    admin_client.post(url("subscription_rotate_secret", subscription.pk))
    assert secret_store.current_secret(subscription).startswith("whsec_")


def test_an_unknown_subscription_is_a_404(admin_client):
    assert admin_client.post(url("subscription_reveal_secret", 987654)).status_code == 404


def test_adding_a_subscription_in_the_admin_stores_one_secret(admin_client):
    response = admin_client.post(
        url("subscription_add"),
        {"owner_id": "", "url": "http://127.0.0.1:9/hook", "description": "", "event_types": "order.created"}
        | {"filters": "{}", "headers": "{}", "max_in_flight": "", "rate_limit": ""},
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription = Subscription.objects.get()
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1
    assert secret_store.signing_secrets(subscription) == [secret_store.current_secret(subscription)]


def test_after_a_rotation_the_change_page_says_until_when_the_previous_secret_signs(admin_client, make_subscription):
    subscription = make_subscription()
    old = secret_store.current_secret(subscription)
    admin_client.post(url("subscription_rotate_secret", subscription.pk))
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert "1 previous secret keeps signing until" in html
    assert old not in html and secret_store.current_secret(subscription) not in html

"""v1a in the subscription admin: the signature scheme on the form, the public keys on the change
page (never a private key), and rotating the key with its own POST."""

from __future__ import annotations

import pytest

from django_webhooks import crypto, secret_store
from django_webhooks.models import SignatureScheme, SubscriptionSigningKey
from tests.admin import messages_of, url

pytestmark = pytest.mark.django_db

FORM = {
    "owner_id": "",
    "description": "",
    "event_types": "*",
    "filters": "{}",
    "headers": "{}",
    "max_in_flight": "",
    "rate_limit": "",
}


def test_choosing_v1a_on_the_form_makes_a_key_shown_on_the_change_page(admin_client, make_subscription):
    subscription = make_subscription()
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert 'name="signature_scheme"' in html and "No signing key yet." in html
    response = admin_client.post(
        url("subscription_change", subscription.pk), {**FORM, "url": subscription.url, "signature_scheme": "v1a"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    subscription.refresh_from_db()
    assert subscription.signature_scheme == SignatureScheme.V1A
    [row] = SubscriptionSigningKey.objects.filter(subscription=subscription)
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert f"<code>{row.public_key}</code>" in html
    assert f"/api/webhooks/key-sets/{subscription.key_set_id}/" in html
    private_key = crypto.decrypt_secret(row.encrypted)
    assert private_key not in html and private_key.removeprefix("whsk_")[:20] not in html


def test_the_add_form_offers_the_scheme_and_defaults_to_v1(admin_client):
    html = admin_client.get(url("subscription_add")).content.decode()
    assert 'name="signature_scheme"' in html and "gets its key pair when it is saved" in html
    response = admin_client.post(url("subscription_add"), {**FORM, "url": "http://127.0.0.1:9/new"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert not SubscriptionSigningKey.objects.exists()


def test_the_rotate_button_makes_a_new_key_and_keeps_the_old_one_signing(admin_client, make_subscription):
    subscription = make_subscription(signature_scheme=SignatureScheme.BOTH)
    [before] = secret_store.public_signing_keys(subscription)
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert f'formaction="{url("subscription_rotate_signing_key", subscription.pk)}"' in html
    response = admin_client.post(url("subscription_rotate_signing_key", subscription.pk), follow=True)
    assert "Rotated the v1a signing key; the previous key keeps signing for 24 hours." in messages_of(response)
    current, previous = secret_store.public_signing_keys(subscription)
    assert previous.public_key == before.public_key and current.public_key != before.public_key
    html = admin_client.get(url("subscription_change", subscription.pk)).content.decode()
    assert "signs until" in html and current.kid in html
    assert admin_client.get(url("subscription_rotate_signing_key", subscription.pk)).status_code == 405


def test_staff_who_may_only_view_cannot_rotate(staff, make_subscription):
    subscription = make_subscription(signature_scheme=SignatureScheme.V1A)
    before = secret_store.public_signing_keys(subscription)
    client = staff("view_subscription")
    assert client.post(url("subscription_rotate_signing_key", subscription.pk)).status_code == 403
    assert secret_store.public_signing_keys(subscription) == before

"""Receiver authentication settings: validation, encryption at rest, rotation, what is shown (admin, API, check W015)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.checks import run_checks
from django.core.exceptions import ValidationError
from django.urls import reverse
from rest_framework.test import APIClient

from django_webhooks import crypto
from django_webhooks.models import ReceiverAuth
from django_webhooks.receiver_auth import auth_problems, configure_auth, describe_auth, load_credentials
from tests.pki import CertificateAuthority

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def pki():
    ca = CertificateAuthority()
    return {"ca": ca, "client": ca.issue("sender", server=False), "other": ca.issue("other", server=False)}


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"method": "basic"}, "username"),
        ({"method": "basic", "username": "u"}, "password"),
        ({"method": "bearer"}, "token"),
        ({"method": "api_key", "token": "t"}, "header_name"),
        ({"method": "api_key", "token": "t", "header_name": "webhook-id"}, "header_name"),
        ({"method": "api_key", "token": "t\r\nX: y", "header_name": "X-Key"}, "token"),
        ({"method": "oauth2", "client_id": "c", "client_secret": "s"}, "token_url"),
        ({"method": "oauth2", "token_url": "https://a.example/t", "client_secret": "s"}, "client_id"),
        ({"method": "oauth2", "token_url": "https://a.example/t", "client_id": "c"}, "client_secret"),
        (
            {
                "method": "oauth2",
                "token_url": "https://a.example/t",
                "client_id": "c",
                "client_auth": "private_key_jwt",
            },
            "private_key",
        ),
        (
            {
                "method": "oauth2",
                "token_url": "https://a.example/t",
                "client_id": "c",
                "client_auth": "private_key_jwt",
                "private_key": "not a key",
            },
            "private_key",
        ),
        ({"method": "oauth2", "token_url": "ftp://a.example/t", "client_id": "c", "client_secret": "s"}, "token_url"),
        (
            {"client_certificate": "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n"},
            "client_certificate",
        ),
        ({"ca_bundle": "garbage"}, "ca_bundle"),
        ({"method": "kerberos"}, "method"),
    ],
)
def test_problems_are_reported_on_their_field(values, field):
    assert field in auth_problems(values)


def test_a_certificate_needs_its_own_key(pki):
    client, other = pki["client"], pki["other"]
    assert "client_key" in auth_problems({"client_certificate": client.certificate})
    mismatch = auth_problems({"client_certificate": client.certificate, "client_key": other.private_key})
    assert "does not belong" in mismatch["client_key"][0]
    assert auth_problems({"client_certificate": client.certificate, "client_key": client.private_key}) == {}


def test_secrets_are_encrypted_rotated_and_dropped_when_unused(make_subscription):
    subscription = make_subscription()
    auth = configure_auth(subscription, method="basic", username="shop", password="first-pass-1")
    assert "first-pass-1" not in auth.encrypted_password
    assert crypto.decrypt_secret(auth.encrypted_password) == "first-pass-1"
    configure_auth(subscription, username="shop2")  # the stored password is kept
    [credentials] = load_credentials([subscription.pk]).values()
    assert credentials.headers()["Authorization"].startswith("Basic ")
    configure_auth(subscription, password="second-pass-2")  # rotation: replaced
    auth.refresh_from_db()
    assert crypto.decrypt_secret(auth.encrypted_password) == "second-pass-2"
    configure_auth(subscription, method="bearer", token="tok-3")
    auth.refresh_from_db()
    assert auth.encrypted_password == "" and auth.username == ""
    assert "tok-3" not in repr(load_credentials([subscription.pk]))
    assert describe_auth(auth)["secrets_set"] == ["token"]


def test_invalid_settings_are_refused_and_nothing_is_stored(make_subscription):
    subscription = make_subscription()
    with pytest.raises(ValidationError) as raised:
        configure_auth(subscription, method="bearer")
    assert "token" in raised.value.message_dict
    assert not ReceiverAuth.objects.exists()


def test_certificate_expiry_is_stored_and_checked(make_subscription, pki):
    ca = pki["ca"]
    soon = ca.issue("soon", server=False, days=3)
    later = ca.issue("later", server=False, days=30)
    expiring = make_subscription()
    configure_auth(expiring, client_certificate=soon.certificate, client_key=soon.private_key)
    fine = make_subscription()
    auth = configure_auth(fine, client_certificate=later.certificate, client_key=later.private_key)
    assert auth.client_certificate_expires_at is not None
    assert timedelta(days=29) < auth.client_certificate_expires_at - auth.updated_at < timedelta(days=31)
    warnings = [m for m in run_checks(databases=["default"]) if m.id == "django_webhooks.W015"]
    assert len(warnings) == 1 and f"subscription {expiring.pk} expires" in warnings[0].msg
    assert not [m for m in run_checks() if m.id == "django_webhooks.W015"]  # only with a database


def test_an_expired_certificate_is_refused_but_a_stored_one_does_not_block_other_changes(make_subscription, pki):
    expired = pki["ca"].issue("expired", server=False, days=-0.002)  # ended 3 minutes ago
    assert (
        "expired"
        in auth_problems({"client_certificate": expired.certificate, "client_key": expired.private_key})[
            "client_certificate"
        ][0]
    )
    subscription = make_subscription()
    configure_auth(subscription, client_certificate=pki["client"].certificate, client_key=pki["client"].private_key)
    with pytest.raises(ValidationError) as raised:
        configure_auth(subscription, client_certificate=expired.certificate, client_key=expired.private_key)
    assert "client_certificate" in raised.value.message_dict
    # A stored certificate that expired since (the W015 check warns about it) still lets the rest change.
    auth = ReceiverAuth.objects.get(subscription=subscription)
    auth.client_certificate = expired.certificate
    auth.encrypted_client_key = crypto.encrypt_secret(expired.private_key)
    auth.save()
    configure_auth(subscription, method="bearer", token="tok-after-expiry")
    assert describe_auth(ReceiverAuth.objects.get(subscription=subscription))["secrets_set"] == ["token", "client_key"]


def test_api_sets_auth_write_only_with_field_errors(django_user_model, pki):
    api = APIClient()
    api.force_authenticate(django_user_model.objects.create_user("alice"))
    body = {
        "url": "https://receiver.example/hook",
        "event_types": ["order.created"],
        "auth": {"method": "oauth2", "token_url": "http://169.254.169.254/token", "client_id": "c"},
    }
    refused = api.post("/api/webhooks/subscriptions/", body, format="json")
    assert refused.status_code == 400
    assert set(refused.json()["auth"]) == {"token_url", "client_secret"}
    client = pki["client"]
    body["auth"] = {
        "method": "oauth2",
        "token_url": "https://auth.example/token",
        "client_id": "c",
        "client_secret": "api-secret-77",
        "client_certificate": client.certificate,
        "client_key": client.private_key,
    }
    created = api.post("/api/webhooks/subscriptions/", body, format="json")
    assert created.status_code == 201, created.json()
    shown = created.json()["auth"]
    assert shown["method"] == "oauth2" and shown["mutual_tls"] is True
    assert shown["client_certificate_expires_at"] and set(shown["secrets_set"]) == {"client_secret", "client_key"}
    assert "api-secret-77" not in created.content.decode()
    assert client.private_key.splitlines()[1] not in created.content.decode()
    url = f"/api/webhooks/subscriptions/{created.json()['id']}/"
    rotated = api.patch(url, {"auth": {"client_secret": "api-secret-88"}}, format="json")
    assert rotated.status_code == 200 and "api-secret-88" not in rotated.content.decode()
    auth = ReceiverAuth.objects.get()
    assert crypto.decrypt_secret(auth.encrypted_client_secret) == "api-secret-88"
    bad_pem = api.patch(url, {"auth": {"ca_bundle": "nope"}}, format="json")
    assert bad_pem.status_code == 400 and "ca_bundle" in bad_pem.json()["auth"]


def test_admin_form_never_renders_secrets(admin_client, make_subscription):
    subscription = make_subscription(url="https://receiver.example/hook")
    change_url = reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])
    page = admin_client.get(change_url)
    form = page.context["adminform"].form
    data = {name: form.initial.get(name, field.initial) for name, field in form.fields.items()}
    data = {k: ("\n".join(v) if isinstance(v, list) else v) for k, v in data.items() if v is not None}
    data.update(
        {
            "event_types": "*",
            "filters": "{}",
            "headers": "{}",
            "event_versions": "{}",
            "auth_method": "api_key",
            "auth_header_name": "X-Shop-Key",
            "auth_token": "admin-key-55",
        }
    )
    response = admin_client.post(change_url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    auth = ReceiverAuth.objects.get(subscription=subscription)
    assert crypto.decrypt_secret(auth.encrypted_token) == "admin-key-55"
    page = admin_client.get(change_url).content.decode()
    assert "admin-key-55" not in page and "secrets stored" in page
    data["auth_header_name"] = "webhook-id"
    data["auth_token"] = ""
    refused = admin_client.post(change_url, data)
    assert refused.status_code == 200 and "auth_header_name" in refused.context["adminform"].form.errors


def test_reencrypt_secrets_covers_receiver_credentials(make_subscription, settings):
    from django_webhooks.secret_store import reencrypt_secrets

    auth = configure_auth(make_subscription(), method="bearer", token="tok-re-1")
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "ENCRYPTION_KEYS": ["new-key-material", settings.SECRET_KEY],
    }
    reencrypt_secrets()
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "ENCRYPTION_KEYS": ["new-key-material"]}
    auth.refresh_from_db()
    assert crypto.decrypt_secret(auth.encrypted_token) == "tok-re-1"

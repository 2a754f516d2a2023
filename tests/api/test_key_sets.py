"""v1a public keys through the API (django_webhooks/api/key_sets.py): the owner's signing-keys and
rotate-signing-key actions, the signature_scheme field, and the public key set without credentials."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from django_webhooks import secret_store
from django_webhooks.api.key_sets import KEY_SET_MAX_AGE
from django_webhooks.models import Subscription, SubscriptionSigningKey
from django_webhooks.receiving import verify
from django_webhooks.signing import key_id, public_jwk, webhook_headers
from tests.api import API

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription(alice, make_subscription):
    return make_subscription("http://127.0.0.1:9/hook", owner_id=str(alice.pk), signature_scheme="both")


def signing_keys(client, subscription):
    response = client.get(f"{API}/subscriptions/{subscription.pk}/signing-keys/")
    assert response.status_code == 200, response.content
    return response.json()


def test_the_owner_reads_the_public_keys_and_where_they_are_published(client, subscription):
    [row] = SubscriptionSigningKey.objects.filter(subscription=subscription)
    document = signing_keys(client, subscription)
    assert document["key_set_url"] == f"http://testserver{API}/key-sets/{subscription.key_set_id}/"
    [key] = document["keys"]
    assert key == {
        **public_jwk(row.public_key),
        "public_key": row.public_key,
        "created": row.created_at.isoformat().replace("+00:00", "Z"),
        "expires": None,
    }
    assert "whsk_" not in str(document) and row.encrypted not in str(document)


def test_key_set_urls_are_random_per_subscription(client, alice, make_subscription, subscription):
    other = make_subscription("http://127.0.0.1:9/other", owner_id=str(alice.pk))
    ids = [
        signing_keys(client, s)["key_set_url"].removeprefix(f"http://testserver{API}/key-sets/")
        for s in (subscription, other)
    ]
    assert ids == [f"{subscription.key_set_id}/", f"{other.key_set_id}/"]
    # "ks_" and 24 random bytes: nothing of the subscription's id or owner, and not guessable.
    assert subscription.key_set_id != other.key_set_id
    assert all(len(s.key_set_id) == 35 and s.key_set_id.startswith("ks_") for s in (subscription, other))


def test_a_v1_subscription_has_no_keys_until_one_is_rotated_in(client, alice, make_subscription):
    v1 = make_subscription("http://127.0.0.1:9/v1", owner_id=str(alice.pk))
    assert signing_keys(client, v1)["keys"] == []
    response = client.post(f"{API}/subscriptions/{v1.pk}/rotate-signing-key/", {}, format="json")
    assert response.status_code == 200
    [key] = signing_keys(client, v1)["keys"]
    assert response.json()["public_key"] == key["public_key"] and response.json()["kid"] == key["kid"]
    v1.refresh_from_db()
    assert v1.signature_scheme == "v1"


def test_rotation_keeps_the_previous_key_listed_for_the_overlap(client, subscription):
    [before] = signing_keys(client, subscription)["keys"]
    started = timezone.now()
    response = client.post(
        f"{API}/subscriptions/{subscription.pk}/rotate-signing-key/", {"overlap_seconds": 3600}, format="json"
    )
    assert response.status_code == 200
    rotated = response.json()
    assert set(rotated) == {"public_key", "kid", "previous_keys_expire_at"}
    assert rotated["public_key"].startswith("whpk_") and rotated["kid"] == key_id(rotated["public_key"])
    current, previous = signing_keys(client, subscription)["keys"]
    assert current["public_key"] == rotated["public_key"] and current["expires"] is None
    assert previous["public_key"] == before["public_key"]
    expires = timezone.datetime.fromisoformat(previous["expires"])
    assert started + timedelta(seconds=3600) <= expires <= timezone.now() + timedelta(seconds=3600)
    client.post(f"{API}/subscriptions/{subscription.pk}/rotate-signing-key/", {"overlap_seconds": 0}, format="json")
    [only] = signing_keys(client, subscription)["keys"]
    assert only["public_key"] not in (before["public_key"], rotated["public_key"])


@pytest.mark.parametrize("overlap", [-1, 30 * 24 * 3600 + 1, "soon"])
def test_rotation_refuses_a_bad_overlap_with_a_field_message(client, subscription, overlap):
    before = secret_store.public_signing_keys(subscription)
    response = client.post(
        f"{API}/subscriptions/{subscription.pk}/rotate-signing-key/", {"overlap_seconds": overlap}, format="json"
    )
    assert response.status_code == 400 and "overlap_seconds" in response.json()
    assert secret_store.public_signing_keys(subscription) == before


def test_choosing_v1a_gives_the_subscription_a_key(client, alice):
    created = client.post(
        f"{API}/subscriptions/",
        {"url": "http://127.0.0.1:9/new", "event_types": ["*"], "signature_scheme": "v1a"},
        format="json",
    )
    assert created.status_code == 201 and created.json()["signature_scheme"] == "v1a"
    subscription = Subscription.objects.get(pk=created.json()["id"])
    assert len(signing_keys(client, subscription)["keys"]) == 1
    plain = client.post(
        f"{API}/subscriptions/", {"url": "http://127.0.0.1:9/plain", "event_types": ["*"]}, format="json"
    )
    assert plain.json()["signature_scheme"] == "v1"
    subscription = Subscription.objects.get(pk=plain.json()["id"])
    assert signing_keys(client, subscription)["keys"] == []
    changed = client.patch(f"{API}/subscriptions/{subscription.pk}/", {"signature_scheme": "both"}, format="json")
    assert changed.status_code == 200 and changed.json()["signature_scheme"] == "both"
    assert len(signing_keys(client, subscription)["keys"]) == 1


def test_an_unknown_scheme_is_a_field_error(client, subscription):
    response = client.patch(f"{API}/subscriptions/{subscription.pk}/", {"signature_scheme": "v2"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"signature_scheme": ["Use one of: v1, v1a, both."]}


# --- the public key set ----------------------------------------------------------------------------


def test_the_key_set_is_public_cacheable_and_the_same_as_the_owners(client, subscription):
    owner_view = signing_keys(client, subscription)
    response = APIClient().get(owner_view["key_set_url"])
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == f"public, max-age={KEY_SET_MAX_AGE}"
    assert response.json() == {"keys": owner_view["keys"]}


def test_the_key_set_verifies_what_the_subscription_signs(client, subscription):
    url = signing_keys(client, subscription)["key_set_url"]
    keys = secret_store.signing_keys([subscription.pk], {subscription.pk: subscription.signature_scheme})
    body = b'{"type": "order.created"}'
    headers = webhook_headers("msg_keyset", int(time.time()), body, keys[subscription.pk].valid(timezone.now()))
    verify(headers, body, APIClient().get(url).json())


def test_the_key_set_lists_only_keys_that_still_sign(client, subscription):
    old = secret_store.public_signing_keys(subscription)[0].public_key
    secret_store.rotate_signing_key(subscription, overlap_seconds=60)
    url = signing_keys(client, subscription)["key_set_url"]
    assert [key["public_key"] for key in APIClient().get(url).json()["keys"]][1] == old
    SubscriptionSigningKey.objects.filter(public_key=old).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert old not in [key["public_key"] for key in APIClient().get(url).json()["keys"]]


@pytest.mark.parametrize("key_set_id", ["ks_unknown", "1", "%00", "x" * 300])
def test_an_unknown_key_set_is_a_json_404(subscription, key_set_id):
    response = APIClient().get(f"{API}/key-sets/{key_set_id}/")
    assert response.status_code == 404
    assert response.json() == {"detail": "No key set has this id."}


def test_a_subscription_id_does_not_reach_a_key_set(subscription):
    for guess in (str(subscription.pk), f"ks_{subscription.pk}"):
        assert APIClient().get(f"{API}/key-sets/{guess}/").status_code == 404

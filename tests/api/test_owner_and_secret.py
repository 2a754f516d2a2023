"""Reads that must not write (the secret endpoint) and the owner resolved once, by the view."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory, force_authenticate

from django_webhooks import secret_store
from django_webhooks.api.permissions import IsWebhookOwner
from django_webhooks.api.views import SubscriptionViewSet
from django_webhooks.models import Subscription, SubscriptionSecret
from django_webhooks.owners import request_user
from tests.api import API

pytestmark = pytest.mark.django_db

RESOLVED: list[object] = []


def counting_resolver(request):
    RESOLVED.append(request)
    return request_user(request)


@pytest.fixture
def counted():
    RESOLVED.clear()
    overrides = {**settings.DJANGO_WEBHOOKS, "OWNER_RESOLVER": "tests.api.test_owner_and_secret.counting_resolver"}
    with override_settings(DJANGO_WEBHOOKS=overrides):
        yield RESOLVED


def secret_rows():
    return list(SubscriptionSecret.objects.order_by("pk").values_list("pk", "encrypted", "expires_at"))


def test_reading_the_secret_writes_nothing(client, alice, make_subscription):
    subscription = make_subscription(owner_id=str(alice.pk))
    before = secret_rows()
    response = client.get(f"{API}/subscriptions/{subscription.pk}/secret/")
    assert response.json() == {"secret": secret_store.current_secret(subscription)}
    assert secret_rows() == before


def test_a_subscription_without_a_secret_is_a_404_that_creates_none(client, alice):
    # bulk_create sends no post_save, so no first secret.
    [subscription] = Subscription.objects.bulk_create(
        [Subscription(url="http://127.0.0.1:9/x", event_types=["*"], owner_id=str(alice.pk))]
    )
    response = client.get(f"{API}/subscriptions/{subscription.pk}/secret/")
    assert response.status_code == 404
    assert "no signing secret yet" in response.json()["detail"]
    assert not SubscriptionSecret.objects.exists()
    rotated = client.post(f"{API}/subscriptions/{subscription.pk}/rotate-secret/", {}, format="json").json()
    assert client.get(f"{API}/subscriptions/{subscription.pk}/secret/").json()["secret"] == rotated["secret"]


def test_creating_with_an_own_secret_keeps_one_row(client):
    mine = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    response = client.post(
        f"{API}/subscriptions/", {"url": "http://127.0.0.1:9/a", "event_types": ["*"], "secret": mine}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert secret_store.signing_secrets(Subscription.objects.get(pk=response.json()["id"])) == [mine]
    assert SubscriptionSecret.objects.count() == 1


def test_the_owner_is_resolved_once_per_request_and_not_stored_on_it(client, alice, make_subscription, counted):
    subscription = make_subscription(owner_id=str(alice.pk))
    response = client.get(f"{API}/subscriptions/{subscription.pk}/")
    assert response.status_code == 200
    assert len(counted) == 1
    assert not hasattr(counted[0], "webhooks_owner_id")
    response = client.post(
        f"{API}/subscriptions/", {"url": "http://127.0.0.1:9/b", "event_types": ["*"]}, format="json"
    )
    assert response.status_code == 201 and len(counted) == 2
    assert Subscription.objects.get(pk=response.json()["id"]).owner_id == str(alice.pk)


def test_the_permission_changes_nothing_on_the_request(alice):
    django_request = APIRequestFactory().get(f"{API}/subscriptions/")
    force_authenticate(django_request, alice)
    request = Request(django_request)
    assert request.user == alice  # authenticates (DRF caches the user on the request)
    view = SubscriptionViewSet(request=request)
    before = dict(vars(request)), dict(vars(django_request))
    assert IsWebhookOwner().has_permission(request, view)
    assert (dict(vars(request)), dict(vars(django_request))) == before
    assert view.owner_id == str(alice.pk)  # resolved by the view, once

"""A subscription's first secret comes with its creation; reading secrets never writes."""

from __future__ import annotations

import pytest
from django.core import serializers

from django_webhooks import secret_store
from django_webhooks.exceptions import MissingSecret, WebhooksError
from django_webhooks.models import Subscription, SubscriptionSecret

pytestmark = pytest.mark.django_db


def bulk_created() -> Subscription:
    """A subscription inserted without post_save, so without a first secret."""
    [subscription] = Subscription.objects.bulk_create([Subscription(url="https://example.com/h", event_types=["*"])])
    return subscription


def test_a_new_subscription_has_a_current_secret_from_its_creation():
    subscription = Subscription.objects.create(url="https://example.com/h", event_types=["*"])
    [row] = SubscriptionSecret.objects.filter(subscription=subscription)
    assert row.expires_at is None
    assert secret_store.current_secret(subscription).startswith("whsec_")
    assert secret_store.signing_secrets(subscription) == [secret_store.current_secret(subscription)]
    subscription.description = "saved again"
    subscription.save()
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_create_secret_replaces_the_first_one():
    subscription = Subscription.objects.create(url="https://example.com/h", event_types=["*"])
    chosen = secret_store.create_secret(subscription)
    assert secret_store.signing_secrets(subscription) == [chosen]
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_reads_of_a_subscription_without_secrets_write_nothing():
    subscription = bulk_created()
    assert secret_store.signing_secrets(subscription) == []
    with pytest.raises(MissingSecret):
        secret_store.current_secret(subscription)
    assert not SubscriptionSecret.objects.exists()


def test_the_delivery_engine_gives_such_a_subscription_a_secret_before_it_signs():
    subscription = bulk_created()
    [secret] = secret_store.signing_keys([subscription.pk])[subscription.pk].secrets
    assert secret.expires_at is None and secret.secret.startswith("whsec_")
    assert secret_store.current_secret(subscription) == secret.secret
    assert secret_store.signing_secrets(subscription) == [secret.secret]
    # Once: the next call signs with the same secret and writes no other.
    assert secret_store.signing_keys([subscription.pk])[subscription.pk].secrets == (secret,)
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_rows_loaded_as_fixtures_get_no_secret_on_load():
    original = Subscription.objects.create(url="https://example.com/h", event_types=["*"])
    data = serializers.serialize("json", [original])
    Subscription.objects.all().delete()
    for obj in serializers.deserialize("json", data):
        obj.save()  # raw, like loaddata
    assert Subscription.objects.filter(pk=original.pk).exists()
    assert not SubscriptionSecret.objects.exists()


def test_missing_secret_is_a_webhooks_error_and_a_lookup_error():
    assert issubclass(MissingSecret, WebhooksError) and issubclass(MissingSecret, LookupError)

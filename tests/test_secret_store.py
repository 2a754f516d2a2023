from __future__ import annotations

import base64
import secrets
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.utils import timezone

from django_webhooks.crypto import decrypt_secret
from django_webhooks.models import (
    DeliveryStatus,
    SignatureScheme,
    Subscription,
    SubscriptionSecret,
    SubscriptionSigningKey,
)
from django_webhooks.secret_store import (
    MAX_OLD_SECRETS,
    PROPAGATION_SECONDS,
    create_secret,
    current_secret,
    public_signing_keys,
    reencrypt_secrets,
    rotate_secret,
    rotate_signing_key,
    signing_keys,
    signing_secrets,
    validate_secret,
)
from django_webhooks.signing import generate_key_pair, generate_secret, key_id, public_key_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def subscription():
    return Subscription.objects.create(url="https://example.com/hooks", event_types=["*"])


def whsec(n_bytes):
    return "whsec_" + base64.b64encode(secrets.token_bytes(n_bytes)).decode()


def test_create_secret_stores_it_encrypted(subscription):
    secret = create_secret(subscription)
    row = SubscriptionSecret.objects.get(subscription=subscription)
    assert secret.startswith("whsec_")
    assert secret.removeprefix("whsec_") not in row.encrypted
    assert decrypt_secret(row.encrypted) == secret
    assert row.expires_at is None
    assert signing_secrets(subscription) == [secret]
    assert current_secret(subscription) == secret


def test_create_secret_with_a_supplied_secret_replaces_the_current_one_at_once(subscription):
    first = create_secret(subscription)
    chosen = whsec(32)
    assert create_secret(subscription, chosen) == chosen
    assert signing_secrets(subscription) == [chosen]
    assert first not in signing_secrets(subscription)
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_create_secret_validates_a_supplied_secret(subscription):
    first = current_secret(subscription)  # made with the subscription
    with pytest.raises(ValidationError):
        create_secret(subscription, "hunter2")
    assert signing_secrets(subscription) == [first]


def test_rotation_signs_with_new_and_old_until_the_overlap_ends(subscription):
    old = create_secret(subscription)
    new = rotate_secret(subscription)
    assert new != old
    assert signing_secrets(subscription) == [new, old]
    assert current_secret(subscription) == new

    retired = SubscriptionSecret.objects.get(subscription=subscription, expires_at__isnull=False)
    assert decrypt_secret(retired.encrypted) == old
    expected = timezone.now() + timedelta(hours=24)
    assert abs(retired.expires_at - expected) < timedelta(minutes=5)

    assert signing_secrets(subscription, now=retired.expires_at - timedelta(seconds=1)) == [new, old]
    assert signing_secrets(subscription, now=retired.expires_at) == [new]


def test_rotation_overlap_from_argument_and_setting(subscription):
    create_secret(subscription)
    rotate_secret(subscription, overlap_seconds=60)
    retired = SubscriptionSecret.objects.get(expires_at__isnull=False)
    assert abs(retired.expires_at - (timezone.now() + timedelta(seconds=60))) < timedelta(minutes=1)

    with override_settings(DJANGO_WEBHOOKS={"SECRET_ROTATION_OVERLAP": 3600 * 48}):
        rotate_secret(subscription)
    latest_retired = SubscriptionSecret.objects.filter(expires_at__isnull=False).latest("created_at")
    assert latest_retired.expires_at - timezone.now() > timedelta(hours=47)

    with pytest.raises(ValueError):
        rotate_secret(subscription, overlap_seconds=-1)


def test_rotation_with_zero_overlap_revokes_every_old_secret(subscription):
    create_secret(subscription)
    rotate_secret(subscription)
    new = rotate_secret(subscription, overlap_seconds=0)
    assert signing_secrets(subscription) == [new]
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_rotation_with_a_supplied_secret(subscription):
    old = create_secret(subscription)
    chosen = whsec(24)
    assert rotate_secret(subscription, secret=chosen) == chosen
    assert signing_secrets(subscription) == [chosen, old]


def test_at_most_ten_old_secrets_keep_signing_newest_first(subscription):
    issued = [create_secret(subscription)]
    for _ in range(MAX_OLD_SECRETS + 3):
        issued.append(rotate_secret(subscription))
    assert signing_secrets(subscription) == list(reversed(issued))[: MAX_OLD_SECRETS + 1]
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == MAX_OLD_SECRETS + 1


def test_expired_secrets_are_excluded_and_deleted_on_rotation(subscription):
    create_secret(subscription)
    rotate_secret(subscription)
    SubscriptionSecret.objects.filter(expires_at__isnull=False).update(expires_at=timezone.now() - timedelta(seconds=1))
    current = current_secret(subscription)
    assert signing_secrets(subscription) == [current]
    newest = rotate_secret(subscription)
    assert signing_secrets(subscription) == [newest, current]
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 2


def test_a_stale_prefetch_does_not_create_a_second_current_secret(subscription):
    stale = Subscription.objects.prefetch_related("secrets").get(pk=subscription.pk)
    created = current_secret(subscription)
    assert signing_secrets(stale) == [created]
    assert SubscriptionSecret.objects.filter(subscription=subscription).count() == 1


def test_prefetched_secrets_need_no_queries(subscription, django_assert_num_queries):
    other = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"])
    old = create_secret(subscription)
    new = rotate_secret(subscription)
    other_secret = create_secret(other)
    with django_assert_num_queries(2):
        loaded = list(Subscription.objects.order_by("pk").prefetch_related("secrets"))
    with django_assert_num_queries(0):
        assert signing_secrets(loaded[0]) == [new, old]
        assert signing_secrets(loaded[1]) == [other_secret]


def test_secrets_are_per_subscription(subscription):
    other = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"])
    mine = create_secret(subscription)
    theirs = create_secret(other)
    rotate_secret(other, overlap_seconds=0)
    assert signing_secrets(subscription) == [mine]
    assert theirs not in signing_secrets(other)


@pytest.mark.parametrize("n_bytes", [24, 32, 64])
def test_validate_secret_accepts_24_to_64_bytes(n_bytes):
    validate_secret(whsec(n_bytes))
    validate_secret(whsec(n_bytes).rstrip("="))


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "whsec_"),
        (base64.b64encode(b"x" * 32).decode(), "whsec_"),
        ("whsec_" + "%" * 40, "base64"),
        ("whsec_" + base64.urlsafe_b64encode(b"\xfb\xff" * 16).decode(), "base64"),
        (whsec(23), "23"),
        (whsec(65), "65"),
        (None, "whsec_"),
    ],
)
def test_validate_secret_rejects_with_a_clear_message(value, message):
    with pytest.raises(ValidationError) as excinfo:
        validate_secret(value)
    assert excinfo.value.code == "invalid_secret"
    assert message in " ".join(excinfo.value.messages)


def test_generated_secrets_are_valid():
    validate_secret(generate_secret())


def test_reencrypt_secrets_moves_every_row_to_the_newest_key(subscription):
    other = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"])
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["old key"]}):
        issued = {create_secret(subscription), rotate_secret(subscription), create_secret(other)}
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["new key", "old key"]}):
        assert reencrypt_secrets(batch_size=2) == 3
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["new key"]}):
        assert {decrypt_secret(row.encrypted) for row in SubscriptionSecret.objects.all()} == issued


def test_signing_keys_of_several_subscriptions_with_expiry_and_version(subscription, django_assert_num_queries):
    other = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"])
    old = create_secret(subscription)
    new = rotate_secret(subscription, overlap_seconds=60)
    theirs = create_secret(other)
    with django_assert_num_queries(1):
        keys = signing_keys([subscription.pk, other.pk])
    assert keys[subscription.pk].valid(timezone.now()) == [new, old]
    assert keys[subscription.pk].valid(timezone.now() + timedelta(seconds=61)) == [new]
    assert keys[other.pk].valid(timezone.now()) == [theirs]
    newest = SubscriptionSecret.objects.filter(subscription=subscription).latest("pk")
    assert keys[subscription.pk].version == newest.pk
    # Every change adds a row: workers notice it by the version.
    rotate_secret(subscription)
    assert signing_keys([subscription.pk])[subscription.pk].version > newest.pk


@pytest.mark.parametrize("in_flight", [True, False], ids=["in-flight", "idle"])
def test_a_change_of_secrets_returns_once_workers_see_it(
    subscription, make_delivery, monkeypatch, django_capture_on_commit_callbacks, in_flight
):
    create_secret(subscription)
    status = DeliveryStatus.IN_FLIGHT if in_flight else DeliveryStatus.PENDING
    make_delivery(subscription, status=status, lease_expires_at=timezone.now() + timedelta(seconds=20))
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with django_capture_on_commit_callbacks(execute=True):
        rotate_secret(subscription)
        # Inside a transaction the wait comes after its commit, not before.
        assert slept == []
    with django_capture_on_commit_callbacks(execute=True):
        create_secret(subscription)
    # Workers' copies are at most PROPAGATION_SECONDS old when a request starts.
    assert slept == ([PROPAGATION_SECONDS] * 2 if in_flight else [])


# --- signing keys (v1a) -----------------------------------------------------------------------------


def test_rotate_signing_key_stores_the_private_key_encrypted_and_the_public_key_readable(subscription):
    public_key = rotate_signing_key(subscription)
    row = SubscriptionSigningKey.objects.get(subscription=subscription)
    private_key = decrypt_secret(row.encrypted)
    assert private_key.startswith("whsk_") and private_key.removeprefix("whsk_") not in row.encrypted
    assert public_key_of(private_key) == public_key == row.public_key
    [published] = public_signing_keys(subscription)
    assert published == (public_key, key_id(public_key), row.created_at, None)


def test_a_rotated_out_key_signs_next_to_the_new_one_for_the_overlap(subscription):
    secret = create_secret(subscription)
    old = rotate_signing_key(subscription)
    new = rotate_signing_key(subscription, overlap_seconds=60)
    assert [key.public_key for key in public_signing_keys(subscription)] == [new, old]
    later = timezone.now() + timedelta(seconds=61)
    assert [key.public_key for key in public_signing_keys(subscription, now=later)] == [new]
    keys = signing_keys([subscription.pk], {subscription.pk: SignatureScheme.BOTH})[subscription.pk]
    assert [public_key_of(key) if key.startswith("whsk_") else key for key in keys.valid(timezone.now())] == [
        secret,
        new,
        old,
    ]
    assert [public_key_of(key) for key in keys.valid(later) if key.startswith("whsk_")] == [new]


@pytest.mark.parametrize(
    "scheme, signs", [("v1", ["whsec_"]), ("v1a", ["whsk_"]), ("both", ["whsec_", "whsk_"])], ids=str
)
def test_the_scheme_says_what_signs(subscription, scheme, signs):
    create_secret(subscription)
    rotate_signing_key(subscription)
    keys = signing_keys([subscription.pk], {subscription.pk: scheme})[subscription.pk]
    assert [key[: key.index("_") + 1] for key in keys.valid(timezone.now())] == signs
    assert keys.scheme == scheme


def test_signing_keys_read_the_keys_only_for_schemes_that_sign_v1a(subscription, django_assert_num_queries):
    v1a = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"], signature_scheme="v1a")
    with django_assert_num_queries(2):
        keys = signing_keys([subscription.pk, v1a.pk], {subscription.pk: "v1", v1a.pk: "v1a"})
    assert keys[subscription.pk].private_keys == () and keys[subscription.pk].key_version == 0
    newest = SubscriptionSigningKey.objects.get(subscription=v1a)
    assert keys[v1a.pk].key_version == newest.pk and len(keys[v1a.pk].private_keys) == 1


def test_a_subscription_that_signs_v1a_gets_a_key_whatever_saved_it(subscription):
    assert not SubscriptionSigningKey.objects.filter(subscription=subscription).exists()
    created = Subscription.objects.create(url="https://example.org/hooks", event_types=["*"], signature_scheme="v1a")
    assert SubscriptionSigningKey.objects.filter(subscription=created, expires_at__isnull=True).count() == 1
    subscription.signature_scheme = SignatureScheme.BOTH
    subscription.save()
    assert len(public_signing_keys(subscription)) == 1
    subscription.save()
    assert SubscriptionSigningKey.objects.filter(subscription=subscription).count() == 1


def test_the_engine_gives_a_key_to_a_subscription_switched_by_update(subscription):
    Subscription.objects.filter(pk=subscription.pk).update(signature_scheme=SignatureScheme.V1A)
    assert public_signing_keys(subscription) == []
    keys = signing_keys([subscription.pk], {subscription.pk: SignatureScheme.V1A})[subscription.pk]
    [private_key] = keys.valid(timezone.now())
    assert [key.public_key for key in public_signing_keys(subscription)] == [public_key_of(private_key)]
    assert keys.key_version == SubscriptionSigningKey.objects.get(subscription=subscription).pk


def test_workers_see_a_change_of_scheme_or_keys_as_stale(subscription):
    create_secret(subscription)
    rotate_signing_key(subscription)
    keys = signing_keys([subscription.pk], {subscription.pk: "both"})[subscription.pk]
    newest_secret = SubscriptionSecret.objects.filter(subscription=subscription).latest("pk").pk
    newest_key = SubscriptionSigningKey.objects.filter(subscription=subscription).latest("pk").pk
    assert not keys.is_stale("both", newest_secret, newest_key)
    assert keys.is_stale("v1a", newest_secret, newest_key)
    assert keys.is_stale("both", newest_secret, newest_key + 1)
    assert keys.is_stale("both", newest_secret + 1, newest_key)
    v1 = signing_keys([subscription.pk], {subscription.pk: "v1"})[subscription.pk]
    # Under v1 the keys are not read, so a new one changes nothing.
    assert not v1.is_stale("v1", newest_secret, newest_key + 1)


def test_rotate_signing_key_takes_a_key_from_elsewhere_and_validates_it(subscription):
    private_key, public_key = generate_key_pair()
    assert rotate_signing_key(subscription, private_key=private_key) == public_key
    with pytest.raises(ValidationError) as excinfo:
        rotate_signing_key(subscription, private_key="whsk_" + base64.b64encode(b"x" * 40).decode())
    assert excinfo.value.code == "invalid_private_key" and "40 bytes" in excinfo.value.messages[0]
    with pytest.raises(ValueError, match="negative"):
        rotate_signing_key(subscription, overlap_seconds=-1)
    assert [key.public_key for key in public_signing_keys(subscription)] == [public_key]


def test_reencrypt_secrets_moves_signing_keys_too(subscription):
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["old key"]}):
        create_secret(subscription)
        public_key = rotate_signing_key(subscription)
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["new key", "old key"]}):
        assert reencrypt_secrets() == 2
    with override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": ["new key"]}):
        [row] = SubscriptionSigningKey.objects.all()
        assert public_key_of(decrypt_secret(row.encrypted)) == public_key


@pytest.mark.parametrize("in_flight", [True, False], ids=["in-flight", "idle"])
def test_a_key_rotation_returns_once_workers_see_it(
    subscription, make_delivery, monkeypatch, django_capture_on_commit_callbacks, in_flight
):
    status = DeliveryStatus.IN_FLIGHT if in_flight else DeliveryStatus.PENDING
    make_delivery(subscription, status=status, lease_expires_at=timezone.now() + timedelta(seconds=20))
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    with django_capture_on_commit_callbacks(execute=True):
        rotate_signing_key(subscription)
        assert slept == []
    assert slept == ([PROPAGATION_SECONDS] if in_flight else [])

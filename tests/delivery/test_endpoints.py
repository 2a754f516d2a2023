"""What senders sign with (django_webhooks/delivery/endpoints.py): the subscription's signature
scheme, secrets and v1a keys, re-read while a task runs; and v1 + v1a requests over loopback HTTP,
checked by a verifier written here from the Standard Webhooks spec text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.utils import timezone
from rest_framework.test import APIClient

from django_webhooks import receiving, secret_store
from django_webhooks.api.key_sets import key_set_url
from django_webhooks.delivery import lanes
from django_webhooks.delivery.endpoints import Endpoints
from django_webhooks.models import DeliveryAttempt, SignatureScheme, Subscription
from django_webhooks.signing import webhook_headers

pytestmark = pytest.mark.django_db


def spec_signatures(headers: dict[str, str]) -> dict[str, list[bytes]]:
    """The spec's webhook-signature: space-delimited "version,base64" entries."""
    found: dict[str, list[bytes]] = {}
    for entry in headers["webhook-signature"].split(" "):
        version, _, encoded = entry.partition(",")
        found.setdefault(version, []).append(base64.b64decode(encoded))
    return found


def spec_content(headers: dict[str, str], body: bytes) -> bytes:
    """The spec's signed content: {msg_id}.{timestamp}.{payload}."""
    return f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body


def spec_v1_valid(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """v1: HMAC-SHA256 with the base64-decoded part of the whsec_ secret."""
    expected = hmac.new(base64.b64decode(secret.removeprefix("whsec_")), spec_content(headers, body), hashlib.sha256)
    return any(hmac.compare_digest(expected.digest(), sig) for sig in spec_signatures(headers).get("v1", []))


def spec_v1a_valid(public_key: str, headers: dict[str, str], body: bytes) -> bool:
    """v1a: ed25519 with the base64-decoded part of the whpk_ public key."""
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
    for signature in spec_signatures(headers).get("v1a", []):
        try:
            key.verify(signature, spec_content(headers, body))
            return True
        except InvalidSignature:
            pass
    return False


def test_scheme_both_sends_v1_and_v1a_that_verify_with_the_secret_and_the_published_key(
    receiver, make_subscription, make_delivery
):
    subscription = make_subscription(url=receiver.url("/hook"), signature_scheme=SignatureScheme.BOTH)
    make_delivery(subscription, data={"id": 7})
    assert lanes.deliver_due(time_budget=1) == 1
    [request] = receiver.wait_for(1)

    # What the receiver knows: the shared secret, and the key set fetched from its public URL.
    secret = secret_store.current_secret(subscription)
    key_set = APIClient().get(key_set_url(subscription)).json()
    [public_key] = [key["public_key"] for key in key_set["keys"]]
    assert sorted(spec_signatures(request.headers)) == ["v1", "v1a"]
    assert spec_v1_valid(secret, request.headers, request.body)
    assert spec_v1a_valid(public_key, request.headers, request.body)
    assert not spec_v1a_valid(public_key, request.headers, request.body + b" ")
    receiving.verify(request.headers, request.body, key_set)
    receiving.verify(request.headers, request.body, secret)
    stored = DeliveryAttempt.objects.get()
    assert stored.succeeded and len(stored.request_headers["webhook-signature"].split()) == 2
    assert not set(request.headers["webhook-signature"].split()) & set(
        stored.request_headers["webhook-signature"].split()
    )


def test_scheme_v1a_sends_only_the_ed25519_signature(receiver, make_subscription, make_delivery):
    subscription = make_subscription(url=receiver.url("/hook"), signature_scheme=SignatureScheme.V1A)
    make_delivery(subscription)
    assert lanes.deliver_due(time_budget=1) == 1
    [request] = receiver.wait_for(1)
    assert list(spec_signatures(request.headers)) == ["v1a"]
    [key] = secret_store.public_signing_keys(subscription)
    assert spec_v1a_valid(key.public_key, request.headers, request.body)


def keys_now(endpoints: Endpoints, subscription: Subscription) -> list[str]:
    endpoint = endpoints.current(subscription.pk, time.monotonic() + 5)
    assert endpoint is not None
    return endpoint.keys.valid(timezone.now())


def test_a_running_task_signs_with_the_new_scheme_and_keys_after_a_refresh(make_subscription):
    subscription = make_subscription()
    endpoints = Endpoints()
    endpoints.load([subscription], time.monotonic())
    assert [key[:6] for key in keys_now(endpoints, subscription)] == ["whsec_"]

    subscription.signature_scheme = SignatureScheme.BOTH
    subscription.save()
    endpoints.refresh([subscription.pk])
    secret, first_private_key = keys_now(endpoints, subscription)
    assert secret == secret_store.current_secret(subscription)
    [first] = secret_store.public_signing_keys(subscription)

    new_public_key = secret_store.rotate_signing_key(subscription, overlap_seconds=60)
    endpoints.refresh([subscription.pk])
    signing = keys_now(endpoints, subscription)
    assert signing[0] == secret and signing[2] == first_private_key
    body = b"{}"
    headers = webhook_headers("msg_refresh", int(time.time()), body, signing)
    assert spec_v1_valid(secret, headers, body)
    assert spec_v1a_valid(new_public_key, headers, body) and spec_v1a_valid(first.public_key, headers, body)

    Subscription.objects.filter(pk=subscription.pk).update(signature_scheme=SignatureScheme.V1A)
    endpoints.refresh([subscription.pk])
    assert [key[:5] for key in keys_now(endpoints, subscription)] == ["whsk_", "whsk_"]

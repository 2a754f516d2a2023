"""End to end: v1a (ed25519) signatures made by real workers, verified by receivers.

A ``qcluster`` subprocess (tests/qcluster.py) delivers to a loopback receiver; each request is
checked with an ed25519 verifier written from the Standard Webhooks text (tests/test_signing.py)
and with ``receiving.verify``, given the ``whpk_`` key or the published key set document.
"""

from __future__ import annotations

import json

import pytest
from django.test import Client
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks import receiving
from django_webhooks.capture.events import send_event
from django_webhooks.models import Delivery, DeliveryStatus
from django_webhooks.secret_store import current_secret, public_signing_keys, rotate_signing_key
from tests.test_e2e_delivery import FAST, fast_settings, wait_for_status  # noqa: F401 (fixture)
from tests.test_signing import spec_v1a_verify

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def cluster(qcluster):
    return qcluster(FAST)


def key_set(subscription) -> dict:
    response = Client().get(f"/api/webhooks/key-sets/{subscription.key_set_id}/")
    assert response.status_code == 200
    return json.loads(response.content)


@pytest.mark.parametrize("scheme", ["v1a", "both"])
def test_workers_sign_v1a_that_independent_and_our_verifiers_accept(cluster, receiver, make_subscription, scheme):
    subscription = make_subscription(url=receiver.url(), event_types=["order.created"], signature_scheme=scheme)
    [public] = public_signing_keys(subscription)
    event = send_event("order.created", {"id": 1})
    [request] = receiver.wait_for(1)
    delivery = wait_for_status(Delivery.objects.get(event=event), DeliveryStatus.SUCCEEDED)
    assert delivery.status == DeliveryStatus.SUCCEEDED
    versions = [entry.partition(",")[0] for entry in request.headers["webhook-signature"].split()]
    assert versions == (["v1a"] if scheme == "v1a" else ["v1", "v1a"])
    assert spec_v1a_verify(public.public_key, request.headers, request.body)
    receiving.verify(request.headers, request.body, public.public_key)
    receiving.verify(request.headers, request.body, key_set(subscription))
    if scheme == "both":  # receivers still on v1 keep working during the migration
        StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    else:
        with pytest.raises(receiving.SignatureVerificationError):
            receiving.verify(request.headers, request.body, current_secret(subscription))


def test_after_a_rotation_both_keys_sign_and_the_key_set_lists_both(cluster, receiver, make_subscription):
    subscription = make_subscription(url=receiver.url(), event_types=["order.created"], signature_scheme="v1a")
    [old] = public_signing_keys(subscription)
    new = rotate_signing_key(subscription)
    event = send_event("order.created", {"id": 2})
    [request] = receiver.wait_for(1)
    assert wait_for_status(Delivery.objects.get(event=event), DeliveryStatus.SUCCEEDED).status == "succeeded"
    assert len(request.headers["webhook-signature"].split()) == 2
    for public_key in (old.public_key, new):
        assert spec_v1a_verify(public_key, request.headers, request.body)
        receiving.verify(request.headers, request.body, public_key)
    document = key_set(subscription)
    assert len(document["keys"]) == 2
    receiving.verify(request.headers, request.body, document)

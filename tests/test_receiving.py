from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.http import HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path

from django_webhooks.exceptions import SignatureVerificationError
from django_webhooks.receiving import verify, verify_webhook
from django_webhooks.signing import generate_key_pair, generate_secret, public_jwk, sign, webhook_headers

SECRET = generate_secret()
OTHER_SECRET = generate_secret()
MSG_ID = "msg_2fWd7SJrAlnLVczz0XN4C5T8CsX"
BODY = json.dumps({"type": "order.created", "data": {"id": 7, "total": "25.00"}}).encode()


def signed(body=BODY, secrets=(SECRET,), timestamp=None, msg_id=MSG_ID):
    return webhook_headers(msg_id, int(time.time()) if timestamp is None else timestamp, body, list(secrets))


def test_a_correctly_signed_webhook_verifies():
    verify(signed(), BODY, SECRET)


def test_header_names_are_case_insensitive_and_meta_style_works():
    headers = {name.title(): value for name, value in signed().items()}
    verify(headers, BODY, SECRET)
    meta = {"HTTP_" + name.upper().replace("-", "_"): value for name, value in signed().items()}
    verify(meta, BODY, SECRET)


def test_svix_header_names_are_accepted():
    headers = {name.replace("webhook-", "svix-"): value for name, value in signed().items()}
    verify(headers, BODY, SECRET)


def test_tampered_body_is_rejected():
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(signed(), BODY.replace(b"25.00", b"0.01"), SECRET)


def test_tampered_message_id_is_rejected():
    headers = {**signed(), "webhook-id": "msg_other"}
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(headers, BODY, SECRET)


def test_wrong_secret_is_rejected():
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(signed(), BODY, OTHER_SECRET)


def test_stale_timestamp_is_rejected_even_with_a_valid_signature():
    now = int(time.time())
    headers = signed(timestamp=now - 301)
    with pytest.raises(SignatureVerificationError, match="too old"):
        verify(headers, BODY, SECRET, now=now)
    verify(signed(timestamp=now - 300), BODY, SECRET, now=now)
    verify(headers, BODY, SECRET, now=now, tolerance=600)


def test_future_timestamp_is_rejected():
    now = int(time.time())
    with pytest.raises(SignatureVerificationError, match="too new"):
        verify(signed(timestamp=now + 301), BODY, SECRET, now=now)
    verify(signed(timestamp=now + 300), BODY, SECRET, now=now)


@pytest.mark.parametrize("value", ["", "abc", "1614265330.5", "-5", " ", "1" * 5000, "\uff11\uff12"])
def test_malformed_timestamp_is_rejected(value):
    with pytest.raises(SignatureVerificationError, match="timestamp"):
        verify({**signed(), "webhook-timestamp": value}, BODY, SECRET)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_headers_are_named(missing):
    headers = signed()
    del headers[missing]
    with pytest.raises(SignatureVerificationError, match=f"Missing {missing} header"):
        verify(headers, BODY, SECRET)


def test_any_v1_signature_may_match_any_secret():
    rotating = signed(secrets=[OTHER_SECRET, SECRET])
    verify(rotating, BODY, SECRET)
    verify(rotating, BODY, OTHER_SECRET)
    verify(signed(), BODY, [OTHER_SECRET, SECRET])
    with pytest.raises(SignatureVerificationError):
        verify(rotating, BODY, [generate_secret(), generate_secret()])


def test_other_versions_and_garbage_signatures_are_skipped():
    now = int(time.time())
    good = sign(SECRET, MSG_ID, now, BODY)
    base = signed(timestamp=now)
    verify({**base, "webhook-signature": f"v1a,AAAA v2,{good[3:]} v1,!!! {good}"}, BODY, SECRET)
    with pytest.raises(SignatureVerificationError, match="No v1 signature"):
        verify({**base, "webhook-signature": f"v1a,{good[3:]}"}, BODY, SECRET)
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify({**base, "webhook-signature": good.replace("v1,", "v1,AAAA")}, BODY, SECRET)


def test_str_body_and_datetime_now_are_accepted():
    verify(signed(), BODY.decode(), SECRET, now=datetime.now(tz=UTC))


def test_verify_with_request_headers():
    request = RequestFactory().post("/hook", data=BODY, content_type="application/json", headers=signed())
    verify(request.headers, request.body, SECRET)
    verify(request.META, request.body, SECRET)


# --- v1a: ed25519 signatures, public keys and key sets ---------------------------------------

PRIVATE_KEY, PUBLIC_KEY = generate_key_pair()
OTHER_PRIVATE_KEY, OTHER_PUBLIC_KEY = generate_key_pair()


def independently_signed(key: Ed25519PrivateKey, body=BODY, timestamp=None, msg_id=MSG_ID) -> dict[str, str]:
    """Headers signed as the spec's text says, with cryptography alone: v1a, base64 of the ed25519
    signature of ``{msg_id}.{timestamp}.{body}``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = key.sign(f"{msg_id}.{timestamp}.".encode() + body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": "v1a," + base64.b64encode(signature).decode(),
    }


def whpk(key: Ed25519PrivateKey) -> str:
    return "whpk_" + base64.b64encode(key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()


def key_set_entry(public_key, expires=None):
    return {**public_jwk(public_key), "public_key": public_key, "created": "2026-01-01T00:00:00Z", "expires": expires}


def test_a_v1a_signature_from_the_independent_signer_verifies_with_its_public_key():
    key = Ed25519PrivateKey.generate()
    verify(independently_signed(key), BODY, whpk(key))
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(independently_signed(key), BODY + b" ", whpk(key))
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify({**independently_signed(key), "webhook-id": "msg_other"}, BODY, whpk(key))
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(independently_signed(key), BODY, PUBLIC_KEY)


def test_v1_and_v1a_side_by_side_verify_with_the_secret_or_the_public_key():
    both = signed(secrets=[SECRET, PRIVATE_KEY])
    verify(both, BODY, SECRET)
    verify(both, BODY, PUBLIC_KEY)
    verify(both, BODY, [OTHER_PUBLIC_KEY, PUBLIC_KEY])
    verify(both, BODY, [OTHER_SECRET, PUBLIC_KEY])
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(both, BODY, [OTHER_SECRET, OTHER_PUBLIC_KEY])


def test_a_public_key_needs_a_v1a_signature():
    with pytest.raises(SignatureVerificationError, match="No v1a signature"):
        verify(signed(), BODY, PUBLIC_KEY)
    with pytest.raises(SignatureVerificationError, match="No v1 or v1a signature"):
        verify({**signed(), "webhook-signature": "v2,AAAA"}, BODY, [SECRET, PUBLIC_KEY])
    # A v1a entry that is not 64 bytes of base64 is no ed25519 signature.
    with pytest.raises(SignatureVerificationError, match="No v1a signature"):
        verify({**signed(), "webhook-signature": "v1a,AAAA v1a,!!!"}, BODY, PUBLIC_KEY)


def test_the_spec_example_header_is_parsed_as_one_v1_and_one_v1a_signature():
    # The example of the spec's "Webhook headers" section; it gives no key, so nothing verifies it,
    # but both entries are signatures of their versions (the v1a one is 64 bytes).
    example = {
        "webhook-id": "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W",
        "webhook-timestamp": "1674087231",
        "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= "
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
    }
    for key in (PUBLIC_KEY, SECRET):
        with pytest.raises(SignatureVerificationError, match="No matching signature"):
            verify(example, BODY, key, now=1674087231)


def test_a_key_set_verifies_with_its_current_keys_and_leaves_expired_ones_out():
    now = int(time.time())
    soon = datetime.fromtimestamp(now + 60, tz=UTC).isoformat()
    key_set = {
        "keys": [
            {"kty": "RSA", "kid": "someone-else", "n": "AQAB", "e": "AQAB"},
            key_set_entry(OTHER_PUBLIC_KEY),
            key_set_entry(PUBLIC_KEY, expires=soon),
        ]
    }
    headers = signed(secrets=[PRIVATE_KEY], timestamp=now)
    verify(headers, BODY, key_set, now=now)
    verify(headers, BODY, [SECRET, key_set], now=now)
    # Once the rotated-out key's overlap ends, a cached key set no longer trusts it.
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify(headers, BODY, key_set, now=now + 61, tolerance=120)
    verify(signed(secrets=[OTHER_PRIVATE_KEY], timestamp=now), BODY, key_set, now=now)


def test_a_key_set_without_current_ed25519_keys_rejects():
    expired = (datetime.now(tz=UTC) - timedelta(seconds=1)).isoformat()
    for key_set in ({"keys": []}, {"keys": [key_set_entry(PUBLIC_KEY, expires=expired)]}):
        with pytest.raises(SignatureVerificationError, match="no current ed25519 key"):
            verify(signed(secrets=[PRIVATE_KEY]), BODY, key_set)


@pytest.mark.parametrize(
    "key, message",
    [
        ({"keys": "nope"}, "keys"),
        ({"keys": ["nope"]}, "JWK"),
        ({"keys": [key_set_entry(PUBLIC_KEY, expires="tomorrow")]}, "ISO 8601"),
        ({"keys": [key_set_entry(PUBLIC_KEY, expires="2030-01-01T00:00:00")]}, "UTC offset"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}]}, "32 bytes"),
        ("whpk_" + base64.b64encode(bytes(31)).decode(), "32 bytes"),
        (PRIVATE_KEY, "public key"),
    ],
)
def test_unusable_keys_and_key_sets_are_refused(key, message):
    with pytest.raises(ValueError, match=message):
        verify(signed(secrets=[PRIVATE_KEY]), BODY, key)


# --- the view decorator, through the test client ---------------------------------------------

received = []


@verify_webhook(secret=SECRET)
def order_hook(request):
    received.append(json.loads(request.body))
    return HttpResponse(status=204)


TENANT_SECRETS = {"acme": [OTHER_SECRET, SECRET], "globex": OTHER_SECRET, "initech": None}


@verify_webhook(secret=lambda request: TENANT_SECRETS.get(request.GET["tenant"]))
def tenant_hook(request):
    return JsonResponse({"id": request.headers["webhook-id"]})


@verify_webhook(secret=[SECRET], tolerance=10)
async def async_hook(request):
    return HttpResponse("async ok")


@verify_webhook(secret=PUBLIC_KEY)
def v1a_hook(request):
    return HttpResponse(status=204)


#: As a receiver caches the key set it fetched from the sender's key set URL.
CACHED_KEY_SET = {"keys": [key_set_entry(OTHER_PUBLIC_KEY), key_set_entry(PUBLIC_KEY)]}


@verify_webhook(secret=lambda request: CACHED_KEY_SET)
def key_set_hook(request):
    return HttpResponse(status=204)


urlpatterns = [
    path("hooks/orders", order_hook),
    path("hooks/tenant", tenant_hook),
    path("hooks/async", async_hook),
    path("hooks/v1a", v1a_hook),
    path("hooks/key-set", key_set_hook),
]


@pytest.fixture
def client(settings):
    settings.ROOT_URLCONF = __name__
    received.clear()
    return Client(enforce_csrf_checks=True)


def post(client, url, body=BODY, headers=None):
    return client.post(url, data=body, content_type="application/json", headers=headers or {})


def test_decorated_view_runs_for_a_signed_webhook_without_csrf_token(client):
    response = post(client, "/hooks/orders", headers=signed())
    assert response.status_code == 204
    assert received == [json.loads(BODY)]


def test_decorated_view_rejects_tampered_body_with_a_plain_text_400(client):
    response = post(client, "/hooks/orders", body=BODY.replace(b"7", b"8"), headers=signed())
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert b"No matching signature" in response.content
    assert received == []


def test_decorated_view_rejects_missing_headers_and_stale_timestamps(client):
    assert b"Missing webhook-id header" in post(client, "/hooks/orders").content
    stale = post(client, "/hooks/orders", headers=signed(timestamp=int(time.time()) - 3600))
    assert stale.status_code == 400 and b"too old" in stale.content
    assert received == []


def test_callable_secret_gets_the_request(client):
    assert post(client, "/hooks/tenant?tenant=globex", headers=signed()).status_code == 400
    response = post(client, "/hooks/tenant?tenant=acme", headers=signed())
    assert response.status_code == 200 and response.json() == {"id": MSG_ID}
    assert post(client, "/hooks/tenant?tenant=globex", headers=signed(secrets=[OTHER_SECRET])).status_code == 200


@pytest.mark.parametrize("tenant", ["initech", "unknown"])
def test_callable_returning_no_secret_rejects(client, tenant):
    response = post(client, f"/hooks/tenant?tenant={tenant}", headers=signed())
    assert response.status_code == 400 and b"No webhook secret" in response.content


def test_async_view(client):
    response = post(client, "/hooks/async", headers=signed())
    assert response.status_code == 200 and response.content == b"async ok"
    assert post(client, "/hooks/async", headers=signed(timestamp=int(time.time()) - 60)).status_code == 400


@pytest.mark.parametrize("url", ["/hooks/v1a", "/hooks/key-set"])
def test_decorated_views_verify_v1a_with_a_public_key_or_a_key_set(client, url):
    assert post(client, url, headers=signed(secrets=[PRIVATE_KEY])).status_code == 204
    assert post(client, url, headers=signed(secrets=[SECRET, PRIVATE_KEY])).status_code == 204
    v1_only = post(client, url, headers=signed())
    assert v1_only.status_code == 400 and b"No v1a signature" in v1_only.content
    forged = post(client, url, headers=signed(secrets=[generate_key_pair()[0]]))
    assert forged.status_code == 400 and b"No matching signature" in forged.content


def test_decorator_checks_a_static_secret_when_applied():
    with pytest.raises(TypeError, match="secret"):
        verify_webhook()
    with pytest.raises(ValueError, match="base64"):
        verify_webhook(secret="whsec_not base64!")
    with pytest.raises(ValueError, match="public key"):
        verify_webhook(secret=[PUBLIC_KEY, PRIVATE_KEY])
    with pytest.raises(ValueError, match="keys"):
        verify_webhook(secret={"keys": None})
    with pytest.raises(ValueError, match="at least one secret"):
        verify_webhook(secret=[])


def test_only_the_first_signatures_of_a_long_header_are_looked_at():
    forged = " ".join(signed(secrets=[generate_key_pair()[0]])["webhook-signature"] for _ in range(32))
    genuine = signed(secrets=[PRIVATE_KEY])
    verify({**genuine, "webhook-signature": f"{genuine['webhook-signature']} {forged}"}, BODY, PUBLIC_KEY)
    with pytest.raises(SignatureVerificationError, match="No matching signature"):
        verify({**genuine, "webhook-signature": f"{forged} {genuine['webhook-signature']}"}, BODY, PUBLIC_KEY)

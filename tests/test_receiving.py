from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from django.http import HttpResponse, JsonResponse
from django.test import Client, RequestFactory
from django.urls import path

from django_webhooks.exceptions import SignatureVerificationError
from django_webhooks.receiving import verify, verify_webhook
from django_webhooks.signing import generate_secret, sign, webhook_headers

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


urlpatterns = [
    path("hooks/orders", order_hook),
    path("hooks/tenant", tenant_hook),
    path("hooks/async", async_hook),
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


def test_decorator_checks_a_static_secret_when_applied():
    with pytest.raises(TypeError, match="secret"):
        verify_webhook()
    with pytest.raises(ValueError, match="base64"):
        verify_webhook(secret="whsec_not base64!")
    with pytest.raises(ValueError, match="at least one secret"):
        verify_webhook(secret=[])

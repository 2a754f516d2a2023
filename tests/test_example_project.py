from __future__ import annotations

import io
import json
import time

import pytest
from django.core.management import call_command

from django_webhooks import secret_store, signing
from django_webhooks.models import EventType, Subscription
from example_project.shop.models import Customer, Order, ReceivedWebhook

pytestmark = pytest.mark.django_db

BODY = json.dumps({"type": "order.created", "timestamp": "2026-01-01T00:00:00Z", "data": {"id": 1}}).encode()


def signed_post(client, path, secret, body=BODY, msg_id="msg_demo1"):
    headers = signing.webhook_headers(msg_id, int(time.time()), body, [secret])
    return client.post(
        path,
        data=body,
        content_type="application/json",
        headers={k: v for k, v in headers.items() if k != "content-type"},
    )


@pytest.fixture
def demo_subscription(make_subscription):
    return make_subscription("http://127.0.0.1:8000/receiver/demo/", event_types=["order.*"])


def test_receiver_accepts_and_records_a_signed_webhook(client, demo_subscription):
    response = signed_post(client, "/receiver/demo/", secret_store.current_secret(demo_subscription))
    assert response.status_code == 204
    received = ReceivedWebhook.objects.get()
    assert received.verified is True
    assert (received.receiver, received.webhook_id, received.event_type) == ("demo", "msg_demo1", "order.created")
    assert received.body == BODY.decode()


def test_receiver_rejects_and_records_a_wrong_signature(client, demo_subscription):
    response = signed_post(client, "/receiver/demo/", signing.generate_secret(), msg_id="msg_forged")
    assert response.status_code == 400
    received = ReceivedWebhook.objects.get()
    assert received.verified is False and received.webhook_id == "msg_forged"
    assert "signature" in received.rejection


def test_receiver_accepts_the_old_secret_during_a_rotation(client, demo_subscription):
    old = secret_store.current_secret(demo_subscription)
    secret_store.rotate_secret(demo_subscription, overlap_seconds=3600)
    assert signed_post(client, "/receiver/demo/", old).status_code == 204


def test_receiver_without_a_subscription_rejects(client):
    assert signed_post(client, "/receiver/nobody/", signing.generate_secret()).status_code == 400
    assert ReceivedWebhook.objects.get().verified is False
    assert client.get("/receiver/nobody/").status_code == 405


def test_received_page_lists_arrivals(client, demo_subscription):
    signed_post(client, "/receiver/demo/", secret_store.current_secret(demo_subscription), msg_id="msg_good")
    signed_post(client, "/receiver/demo/", signing.generate_secret(), msg_id="msg_bad")
    page = client.get("/receiver/").content.decode()
    assert "msg_good" in page and "msg_bad" in page
    assert page.count('class="yes"') == 1 and page.count('class="no"') == 1
    assert "order.created" in page


def test_demo_no_serve_sets_up_data():
    out = io.StringIO()
    call_command("demo", "--no-serve", stdout=out)
    output = out.getvalue()
    assert "Staff login: admin / admin" in output
    assert "http://127.0.0.1:8000/receiver/" in output
    from django.contrib.auth import get_user_model

    staff = get_user_model().objects.get(username="admin")
    assert staff.is_staff and staff.check_password("admin")
    demo = Customer.objects.get(name="Demo Customer")
    assert Order.objects.filter(customer=demo).exists()
    subscription = Subscription.objects.get(url="http://127.0.0.1:8000/receiver/demo/")
    assert subscription.owner_id == str(demo.user_id)
    assert secret_store.signing_secrets(subscription)
    assert set(EventType.objects.values_list("name", flat=True)) >= {"order.created", "order.updated", "order.deleted"}

    call_command("demo", "--no-serve", stdout=io.StringIO())
    assert Subscription.objects.count() == 1
    assert get_user_model().objects.filter(username="admin").count() == 1


def test_customer_can_log_in_to_the_api(client):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("demo", password="demo")
    assert client.get("/api-auth/login/").status_code == 200
    response = client.post(
        "/api-auth/login/?next=/api/webhooks/subscriptions/", {"username": "demo", "password": "demo"}
    )
    assert response.status_code == 302
    assert client.get("/api/webhooks/subscriptions/", HTTP_ACCEPT="application/json").status_code == 200

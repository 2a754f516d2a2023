"""The example project (example_project/): its receiver, ``manage.py demo``, settings and URLs.

The suite runs on its own settings (tests/settings.py), without the demo's shop app. So the one
test collected there, :func:`test_the_demo_passes_its_tests_under_its_own_settings`, runs this
module again in a pytest subprocess under ``example_project.settings``, where the tests of the
demo below (``@demo_test``) are collected instead.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.apps import apps
from django.core.checks.registry import registry
from django.core.management import call_command
from django.test import override_settings

from django_webhooks import secret_store, signing
from django_webhooks.models import EventType, Subscription
from tests.api import assert_schema_pages_are_served

#: True under ``example_project.settings`` (the subprocess run), False under ``tests.settings``.
DEMO = apps.is_installed("example_project.shop")
if DEMO:
    from example_project.shop.models import Customer, Order, ReceivedWebhook

ROOT = Path(__file__).resolve().parent.parent
DEMO_TESTS: list[str] = []

pytestmark = pytest.mark.django_db


def demo_test(test):
    """A test of the demo: collected only under ``example_project.settings``."""
    test.__test__ = DEMO
    DEMO_TESTS.append(test.__name__)
    return test


def test_the_demo_passes_its_tests_under_its_own_settings(tmp_path):
    """This module's ``@demo_test`` tests, in a pytest run under ``example_project.settings``: on
    a fresh SQLite file, or on PostgreSQL next to this run's test database."""
    from tests.qcluster import database_env

    private = ("SQLITE_PATH", "TEST_DB_NAME", "DWH_TEST_OVERRIDES", "DWH_TEST_Q_CLUSTER", "PYTEST_ADDOPTS")
    env = {key: value for key, value in os.environ.items() if key not in private}
    env["DJANGO_SETTINGS_MODULE"] = "example_project.settings"
    database = database_env()
    if "DATABASE_URL" in database:  # Django tests on test_<this run's test database>
        env["DATABASE_URL"] = database["DATABASE_URL"]
    else:
        env["SQLITE_PATH"] = str(tmp_path / "demo.sqlite3")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "--ds=example_project.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert done.returncode == 0, output
    assert re.search(rf"\b{len(DEMO_TESTS)} passed\b", done.stdout), output
    assert not re.search(r"\b(skipped|failed|errors?|deselected)\b", done.stdout.splitlines()[-1]), output


test_the_demo_passes_its_tests_under_its_own_settings.__test__ = not DEMO


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


@demo_test
def test_receiver_accepts_and_records_a_signed_webhook(client, demo_subscription):
    response = signed_post(client, "/receiver/demo/", secret_store.current_secret(demo_subscription))
    assert response.status_code == 204
    received = ReceivedWebhook.objects.get()
    assert received.verified is True
    assert (received.receiver, received.webhook_id, received.event_type) == ("demo", "msg_demo1", "order.created")
    assert received.body == BODY.decode()


@demo_test
def test_receiver_rejects_and_records_a_wrong_signature(client, demo_subscription):
    response = signed_post(client, "/receiver/demo/", signing.generate_secret(), msg_id="msg_forged")
    assert response.status_code == 400
    received = ReceivedWebhook.objects.get()
    assert received.verified is False and received.webhook_id == "msg_forged"
    assert "signature" in received.rejection


@demo_test
def test_receiver_accepts_the_old_secret_during_a_rotation(client, demo_subscription):
    old = secret_store.current_secret(demo_subscription)
    secret_store.rotate_secret(demo_subscription, overlap_seconds=3600)
    assert signed_post(client, "/receiver/demo/", old).status_code == 204


@demo_test
def test_receiver_without_a_subscription_rejects(client):
    assert signed_post(client, "/receiver/nobody/", signing.generate_secret()).status_code == 400
    assert ReceivedWebhook.objects.get().verified is False
    assert client.get("/receiver/nobody/").status_code == 405


@demo_test
def test_received_page_lists_arrivals(client, demo_subscription):
    signed_post(client, "/receiver/demo/", secret_store.current_secret(demo_subscription), msg_id="msg_good")
    signed_post(client, "/receiver/demo/", signing.generate_secret(), msg_id="msg_bad")
    page = client.get("/receiver/").content.decode()
    assert "msg_good" in page and "msg_bad" in page
    assert page.count('class="yes"') == 1 and page.count('class="no"') == 1
    assert "order.created" in page


@demo_test
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


@demo_test
def test_customer_can_log_in_to_the_api(client):
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("demo", password="demo")
    assert client.get("/api-auth/login/").status_code == 200
    response = client.post(
        "/api-auth/login/?next=/api/webhooks/subscriptions/", {"username": "demo", "password": "demo"}
    )
    assert response.status_code == 302
    assert client.get("/api/webhooks/subscriptions/", HTTP_ACCEPT="application/json").status_code == 200


@demo_test
def test_the_demo_serves_the_schema_and_its_documentation_pages():
    assert_schema_pages_are_served()


@demo_test
def test_example_project_settings_are_clean():
    """The example project runs SQLite with 2 workers, but in WAL mode, so W005 stays quiet."""
    from example_project import settings as example

    checks = [check for check in registry.get_checks() if check.__module__ == "django_webhooks.checks"]
    assert len(checks) >= 8
    with override_settings(DEBUG=example.DEBUG):
        messages = [message for check in checks for message in check(app_configs=None, databases=None)]
    assert messages == []


@demo_test
def test_the_customer_reaches_the_portal_from_the_shop(client):
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("demo", password="demo")
    Customer.objects.create(user=user, name="Demo Customer")
    assert client.get("/shop/")["Location"].startswith("/api-auth/login/")
    client.force_login(user)
    page = client.get("/shop/").content.decode()
    assert 'href="/webhooks/"' in page
    assert client.get("/webhooks/").status_code == 200
    linked = client.post("/shop/webhooks-link/", {"scope": "read"})
    assert linked["Location"].startswith("/webhooks/enter/")
    assert client.get(linked["Location"])["Location"] == "/webhooks/"
    assert client.post("/webhooks/endpoints/new/").status_code == 403  # the read-only link's session

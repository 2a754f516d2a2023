"""The admin in headless Chromium: log in, subscribe a loopback receiver, test, inspect, rotate, dashboard.

Screenshots of every page land in ``tests/artifacts/`` (ignored by git) for review.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from django_webhooks import secret_store
from django_webhooks.delivery import attempt_stats
from django_webhooks.models import DeliveryAttempt, DeliveryStatus, Subscription

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture
def browser_page(monkeypatch):
    # playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()
            # With playwright's loop running, the ORM calls of the test used connections of their
            # own context; close them before the test database is dropped.
            connections.close_all()


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"admin-{name}.png"), full_page=True)


def seed_failures(make_subscription, make_delivery) -> Subscription:
    """A partner endpoint that failed for a few hours, so the dashboard has something to show."""
    down = make_subscription("http://127.0.0.1:9/partner", description="Partner (down)")
    now = timezone.now()
    attempts = []
    for hours_ago in range(1, 30):
        delivery = make_delivery(down, status=DeliveryStatus.FAILED)
        attempt = DeliveryAttempt.objects.create(
            delivery=delivery,
            subscription=down,
            attempt_number=1,
            url=down.url,
            created_at=now - timedelta(hours=hours_ago, minutes=7),
            succeeded=hours_ago > 6,
            response_status=200 if hours_ago > 6 else 503,
            duration_ms=40 + 35 * (hours_ago % 7),
        )
        attempts.append(attempt)
    attempt_stats.add(attempts)  # counted as outcomes.record counts what it stores
    return down


def test_staff_journey_in_the_admin(
    live_server, transactional_db, django_user_model, receiver, browser_page, make_subscription, make_delivery
):
    django_user_model.objects.create_superuser("ops", "ops@example.com", "correct-horse")
    page = browser_page
    admin = f"{live_server.url}/admin/"

    page.goto(f"{admin}login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "correct-horse")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")

    page.goto(f"{admin}django_webhooks/subscription/add/")
    page.fill("#id_url", receiver.url("/hook"))
    page.fill("#id_description", "Shop receiver")
    page.fill("#id_event_types", "order.created\norder.*")
    page.fill("#id_headers", '{"X-Team": "billing"}')
    screenshot(page, "1-subscription-add")
    page.click("input[name=_save]")
    page.wait_for_selector("ul.messagelist")
    subscription = Subscription.objects.get(description="Shop receiver")
    assert subscription.event_types == ["order.created", "order.*"]
    screenshot(page, "2-subscription-list")

    page.check(f"input[name=_selected_action][value='{subscription.pk}']")
    page.select_option("select[name=action]", "send_test_event")
    page.click("button[name=index]")
    message = page.wait_for_selector("ul.messagelist li")
    assert "HTTP 200" in message.inner_text()
    assert receiver.wait_for(1)[0].headers["x-team"] == "billing"
    screenshot(page, "3-test-event-sent")

    page.click("ul.messagelist a:has-text('View the delivery')")
    page.wait_for_selector("#delivery_attempts-group")
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_status == 200
    attempts = page.inner_text("#delivery_attempts-group")
    assert "200" in attempts
    assert attempt.request_headers["webhook-signature"] not in page.content()
    screenshot(page, "4-delivery")

    change_page = f"{admin}django_webhooks/subscription/{subscription.pk}/change/"
    page.goto(change_page)
    before = secret_store.current_secret(subscription)
    assert before not in page.content()
    page.click("#reveal-secret")  # a POST of its own, with the change form's CSRF token
    assert page.inner_text(".dwh-secret-value") == before
    screenshot(page, "5-secret-revealed")
    page.goto(change_page)
    page.click("#rotate-secret")
    assert "Rotated the signing secret" in page.wait_for_selector("ul.messagelist li").inner_text()
    assert secret_store.current_secret(subscription) != before
    screenshot(page, "6-secret-rotated")

    down = seed_failures(make_subscription, make_delivery)
    page.goto(f"{admin}django_webhooks/")
    screenshot(page, "7-app-index")
    page.click("a.dwh-dashboard-link")
    page.wait_for_selector("svg.dwh-chart")
    assert page.locator("svg.dwh-chart").count() == 4
    assert "succeeded, 6 failed)" in page.inner_text("#window-24h")
    assert page.locator(f"#window-24h .dwh-top-failing a:has-text('{down.description}')").count() == 1
    screenshot(page, "8-dashboard")

"""The portal in headless Chromium, as a customer: a signed link in, an endpoint to a loopback
receiver, a test event, the secret rotated, the catalog, the log searched by event id, an
attempt read, a resend and a recovery; axe-core on every page, light and dark.

Screenshots at 1,280 and 390 px wide land in ``tests/artifacts/`` (ignored by git).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

from django_webhooks import secret_store
from django_webhooks.models import AuditAction, AuditLogEntry, Delivery, DeliveryStatus, Subscription
from django_webhooks.portal.links import portal_link

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).parents[1] / "artifacts"
#: axe-core 4.14.1 (npm axe-core, axe.min.js), vendored so CI installs nothing.
AXE = Path(__file__).with_name("axe.min.js")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium is not installed at {CHROMIUM}"),
]


@pytest.fixture
def browser(monkeypatch):
    # playwright's sync API runs an event loop in this thread; the ORM calls of the test are still sync.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            yield chromium
        finally:
            chromium.close()
            connections.close_all()


def serious_violations(page) -> list[str]:
    page.add_script_tag(path=str(AXE))
    results = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{violation['id']} ({violation['impact']}): {[node['target'] for node in violation['nodes']][:3]}"
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
    ]


class Walk:
    """One page, checked by axe-core and photographed at each step."""

    def __init__(self, page) -> None:
        self.page = page
        self.problems: dict[str, list[str]] = {}

    def check(self, name: str) -> None:
        self.page.wait_for_load_state()
        found = serious_violations(self.page)
        if found:
            self.problems[name] = found
        ARTIFACTS.mkdir(exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"portal-{name}-1280.png"), full_page=True)


def test_customer_journey_in_the_portal(live_server, transactional_db, django_user_model, receiver, browser):
    alice = django_user_model.objects.create_user("alice")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    walk = Walk(page)
    base = live_server.url

    # A signed link in: the host's backend made it for the signed-in customer.
    page.goto(base + portal_link(alice))
    page.wait_for_selector("h1:has-text('Webhook endpoints')")
    walk.check("1-empty")

    page.click("a:has-text('Add endpoint')")
    page.fill("#id_url", receiver.url("/hook"))
    page.fill("#id_description", "Alice ERP")
    page.check("input[name=event_types][value='order.created']")
    page.fill("#id_patterns", "order.*")
    walk.check("2-new-endpoint")
    page.click("button:has-text('Create endpoint')")
    page.wait_for_selector(".dwh-message-success")
    subscription = Subscription.objects.get(description="Alice ERP")
    assert subscription.owner_id == str(alice.pk)
    assert subscription.event_types == ["order.created", "order.*"]

    # Send a test event and see it arrive, and its attempt.
    page.select_option("#id_event_type", "order.created")
    page.click("button:has-text('Send test event')")
    assert "HTTP 200" in page.wait_for_selector(".dwh-message-success").inner_text()
    arrived = receiver.wait_for(1)[0]
    assert arrived.headers["webhook-id"] == Delivery.objects.get().message_id
    assert page.locator("#attempts li").count() == 1
    walk.check("3-test-event")

    # Rotate the secret: reveal, rotate, reveal the new one.
    page.goto(f"{base}/webhooks/endpoints/{subscription.pk}/secret/")
    before = secret_store.current_secret(subscription)
    assert before not in page.content()
    page.click("#reveal-secret")
    assert page.inner_text("#dwh-secret-value") == before
    walk.check("4-secret")
    page.click("#rotate-secret")
    assert "Rotated the signing secret" in page.wait_for_selector(".dwh-message-success").inner_text()
    page.click("#reveal-secret")
    after = page.inner_text("#dwh-secret-value")
    assert after == secret_store.current_secret(subscription) != before

    # The catalog.
    page.click("nav a:has-text('Event catalog')")
    section = page.wait_for_selector("#type-order-created")
    assert "An order was placed." in section.inner_text()
    page.click("#type-order-created summary:has-text('What a delivery looks like')")
    assert "webhook-signature: v1," in page.inner_text("#type-order-created-sample")
    walk.check("5-catalog")

    # Failures to find, read, resend and recover.
    receiver.script = []
    from tests.receiver import Reply

    receiver.script = [Reply(503, b"down for maintenance")]
    page.goto(f"{base}/webhooks/endpoints/{subscription.pk}/")
    page.select_option("#id_event_type", "order.updated")
    page.click("button:has-text('Send test event')")
    page.wait_for_selector(".dwh-message-error")
    failed = Delivery.objects.get(event__event_type="order.updated")
    Delivery.objects.filter(pk=failed.pk).update(status=DeliveryStatus.FAILED, next_attempt_at=None)

    page.click("nav a:has-text('Delivery log')")
    page.fill("#id_q", str(failed.event_id))
    with page.expect_response(lambda response: "/webhooks/deliveries/" in response.url):
        page.press("#id_q", "Enter")  # htmx swaps the results in and pushes the URL
    page.wait_for_function("document.querySelectorAll('#delivery-log tbody tr').length === 1")
    assert f"q={failed.event_id}" in page.url
    walk.check("6-log")
    page.click(f"#delivery-log a:has-text('{failed.message_id}')")
    page.wait_for_selector("#attempts")
    assert "HTTP 503" in page.inner_text("#attempts")
    page.click("#attempts summary:has-text('Response headers and body')")
    assert "down for maintenance" in page.inner_text("#attempts")
    walk.check("7-delivery")

    receiver.script = [Reply(200)]
    page.click("#resend")
    page.wait_for_selector(".dwh-message-success")
    assert Delivery.objects.get(pk=failed.pk).status == DeliveryStatus.PENDING

    Delivery.objects.filter(pk=failed.pk).update(
        status=DeliveryStatus.EXHAUSTED, created_at=timezone.now() - timedelta(minutes=5)
    )
    page.goto(f"{base}/webhooks/endpoints/{subscription.pk}/")
    page.fill("#id_since", timezone.localtime(timezone.now() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"))
    page.click("button:has-text('Send them again')")
    assert "Queued 1 failed deliveries again" in page.wait_for_selector(".dwh-message-success").inner_text()
    walk.check("8-endpoint")

    assert set(AuditLogEntry.objects.values_list("action", flat=True)) >= {
        AuditAction.LINK_OPENED,
        AuditAction.SUBSCRIPTION_CREATED,
        AuditAction.TEST_EVENT_SENT,
        AuditAction.SECRET_REVEALED,
        AuditAction.SECRET_ROTATED,
        AuditAction.DELIVERY_RESENT,
        AuditAction.DELIVERIES_RECOVERED,
    }

    # The same pages on a phone, light and dark.
    for scheme in ("light", "dark"):
        phone = browser.new_page(viewport={"width": 390, "height": 844}, color_scheme=scheme)
        phone.context.add_cookies(page.context.cookies())
        for name, path in (
            ("endpoint", f"/webhooks/endpoints/{subscription.pk}/"),
            ("log", "/webhooks/deliveries/"),
            ("delivery", f"/webhooks/deliveries/{failed.pk}/"),
            ("catalog", "/webhooks/event-types/"),
        ):
            phone.goto(base + path)
            found = serious_violations(phone)
            if found:
                walk.problems[f"{name}-390-{scheme}"] = found
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width} px wide on a 390 px phone"
            phone.screenshot(path=str(ARTIFACTS / f"portal-{name}-390-{scheme}.png"), full_page=True)
        phone.close()
    assert walk.problems == {}

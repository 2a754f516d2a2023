"""The delivery dashboard (django_webhooks/admin/dashboard.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.admin import url

pytestmark = pytest.mark.django_db


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_page(admin_client, log):
    response = admin_client.get(url("dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="dwh-chart"') == 4
    assert "Top failing subscriptions" in html
    assert url("subscription_change", log["globex"].pk) in html


def test_dashboard_is_linked_from_the_app_index(admin_client):
    html = admin_client.get(reverse("admin:app_list", args=["django_webhooks"])).content.decode()
    assert url("dashboard") in html


def test_dashboard_needs_the_delivery_view_permission(staff):
    assert staff("view_subscription").get(url("dashboard")).status_code == 403


def test_dashboard_for_staff_who_may_view_deliveries(staff):
    assert staff("view_delivery").get(url("dashboard")).status_code == 200

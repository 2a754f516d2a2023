"""The delivery dashboard (django_webhooks/admin/dashboard.py)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_webhooks.delivery import attempt_stats
from django_webhooks.models import DeliveryAttempt, ErrorClass
from tests.admin import add_attempt, url

pytestmark = pytest.mark.django_db


@pytest.fixture
def counted(log):
    """The log's attempts counted in the hourly rows, as ``outcomes.record`` counts them."""
    attempt_stats.add(list(DeliveryAttempt.objects.all()))
    return log


def count(*attempts):
    attempt_stats.add(list(attempts))


def windows(response) -> dict[str, dict]:
    return {window["key"]: window for window in response.context["windows"]}


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_page(admin_client, counted):
    response = admin_client.get(url("dashboard"))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('<svg class="dwh-chart"') == 4
    assert "Top failing subscriptions" in html
    assert url("subscription_change", counted["globex"].pk) in html
    assert "Globex" in html and "globex" in html  # the subscription's description, its owner
    day = windows(response)["24h"]["summary"]
    assert (day["attempts"], day["succeeded"], day["failed"]) == (2, 1, 1)
    assert day["failures"]["5xx"] == 1


def test_the_figures_come_from_the_hourly_rows(admin_client, log):
    """Attempts not counted (pruned rows' hours aside, none in practice) are not on the dashboard."""
    response = admin_client.get(url("dashboard"))
    assert windows(response)["24h"]["summary"]["attempts"] == 0
    assert "No failed attempts." in response.content.decode()


def test_filtered_by_subscription(admin_client, counted):
    globex, acme = counted["globex"], counted["acme"]
    response = admin_client.get(url("dashboard"), {"subscription": globex.pk})
    html = response.content.decode()
    assert response.status_code == 200
    summary = windows(response)["7d"]["summary"]
    assert (summary["attempts"], summary["failed"]) == (1, 1)
    assert f"#{globex.pk} Globex" in html
    assert [row["subscription"] for row in windows(response)["24h"]["top_failing"]] == [globex]
    response = admin_client.get(url("dashboard"), {"subscription": acme.pk})
    assert windows(response)["24h"]["summary"]["succeeded"] == 1
    assert windows(response)["24h"]["top_failing"] == []


def test_filtered_by_owner(admin_client, counted, owner, other_owner, make_subscription, make_delivery):
    crm = make_subscription("http://127.0.0.1:9/acme-2", owner_id=str(owner.pk), description="Acme CRM")
    count(add_attempt(make_delivery(crm), succeeded=False, status=None, error_class=ErrorClass.TIMEOUT))
    response = admin_client.get(url("dashboard"), {"owner": owner.pk})
    html = response.content.decode()
    summary = windows(response)["24h"]["summary"]
    assert (summary["attempts"], summary["succeeded"], summary["failures"]["timeout"]) == (2, 1, 1)
    assert "acme-shop" in html
    response = admin_client.get(url("dashboard"), {"owner": other_owner.pk, "subscription": counted["acme"].pk})
    assert windows(response)["24h"]["summary"]["attempts"] == 0  # both filters hold


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"subscription": "abc"}, "Enter a whole number"),
        ({"subscription": "999999"}, "There is no subscription #999999."),
        ({"subscription": "-1"}, "greater than or equal to 1"),
        ({"owner": "not-a-user-id"}, "“not-a-user-id” is not an owner id."),
        ({"owner": "x" * 200}, "at most 64 characters"),
    ],
)
def test_a_filter_that_names_nothing_is_reported_and_left_out(admin_client, counted, params, message):
    response = admin_client.get(url("dashboard"), params)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'class="errornote"' in html and message in html
    assert windows(response)["24h"]["summary"]["attempts"] == 2


def test_an_owner_without_an_instance_is_shown_by_id(admin_client, counted):
    response = admin_client.get(url("dashboard"), {"owner": "424242"})
    assert response.status_code == 200
    assert "424242 (not found)" in response.content.decode()
    assert windows(response)["24h"]["summary"]["attempts"] == 0


def test_the_dashboard_costs_the_same_whatever_the_attempts(admin_client, counted):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(url("dashboard")).status_code == 200
        return len(captured)

    before = queries()
    globex = counted["globex"]
    for _ in range(30):
        count(add_attempt(counted["failed"], succeeded=False, status=500, error_class=ErrorClass.HTTP_STATUS))
    assert queries() == before
    assert windows(admin_client.get(url("dashboard")))["24h"]["top_failing"][0]["failed"] == 31
    assert globex.attempt_stats.get().attempts == 31


def test_dashboard_is_linked_from_the_app_index(admin_client):
    html = admin_client.get(reverse("admin:app_list", args=["django_webhooks"])).content.decode()
    assert url("dashboard") in html


def test_dashboard_is_linked_from_the_admin_index_and_its_row_leads_there(admin_client):
    html = admin_client.get(reverse("admin:index")).content.decode()
    stats_list = url("attemptstats_changelist")
    assert f'href="{stats_list}"' in html
    assert url("attemptstats_add") not in html
    response = admin_client.get(stats_list, {"subscription": "7"})
    assert response.status_code == 302 and response["Location"] == url("dashboard") + "?subscription=7"


def test_the_hourly_rows_are_listed_for_who_may_see_the_dashboard(staff):
    client = staff("view_delivery")
    assert url("attemptstats_changelist") in client.get(reverse("admin:index")).content.decode()
    assert client.get(url("attemptstats_changelist")).status_code == 302


def test_dashboard_needs_the_delivery_view_permission(staff):
    client = staff("view_subscription", "view_attemptstats")
    assert client.get(url("dashboard")).status_code == 403
    assert client.get(url("attemptstats_changelist")).status_code == 403
    assert url("attemptstats_changelist") not in client.get(reverse("admin:index")).content.decode()


def test_dashboard_for_staff_who_may_view_deliveries(staff):
    assert staff("view_delivery").get(url("dashboard")).status_code == 200

"""The admins' shared parts (django_webhooks/admin/common.py): every list, cheap counts, dates, deleting."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_webhooks.models import EventType
from tests.admin import _bulk_log, action, changelist_rows, offered_actions, url

pytestmark = pytest.mark.django_db


# --- lists ------------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["subscription", "event", "delivery", "deliveryattempt", "eventtype"])
def test_every_list_renders(admin_client, log, model):
    EventType.objects.create(name="order.created", description="An order was placed.")
    response = admin_client.get(url(f"{model}_changelist"))
    assert response.status_code == 200
    assert changelist_rows(response)


def test_log_lists_do_not_count_the_whole_table(admin_client, log):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(url("delivery_changelist"))
    counts = [q["sql"] for q in queries if "COUNT(" in q["sql"].upper()]
    assert counts
    assert all("LIMIT" in sql.upper() for sql in counts), counts


# --- filters ----------------------------------------------------------------------------------


def test_delivery_date_hierarchy_offers_the_years_with_deliveries(admin_client, log):
    html = admin_client.get(url("delivery_changelist")).content.decode()
    this_year, old_year = timezone.localtime().year, timezone.localtime(log["old"].created_at).year
    assert f"created_at__year={old_year}" in html
    assert f"created_at__year={this_year}" in html
    response = admin_client.get(url("delivery_changelist") + f"?created_at__year={this_year}")
    assert "created_at__month=" in response.content.decode()


# --- permissions ------------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt", "subscription"])
def test_delete_needs_the_delete_permission(staff, log, model):
    client = staff(f"view_{model}")
    obj = {
        "event": log["ok"].event,
        "delivery": log["ok"],
        "deliveryattempt": log["ok"].delivery_attempts.get(),
        "subscription": log["acme"],
    }[model]
    response = client.get(url(f"{model}_changelist"))
    assert "delete_selected" not in offered_actions(response)
    assert client.post(url(f"{model}_delete", obj.pk), {"post": "yes"}).status_code == 403
    action(client, "delete_selected", [obj], model=model, post="yes")
    assert type(obj).objects.filter(pk=obj.pk).exists()


# --- cheap counts -----------------------------------------------------------------------------


def test_list_counts_stop_at_the_limit(admin_client, make_subscription, monkeypatch):
    from django_webhooks.admin import common

    monkeypatch.setattr(common, "COUNT_LIMIT", 5)
    _bulk_log([make_subscription()], 8)
    response = admin_client.get(url("delivery_changelist"))
    assert response.context["cl"].result_count == 5
    assert response.context["cl"].full_result_count is None


@pytest.mark.postgres
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (DATABASE_URL)")
def test_unfiltered_list_uses_the_row_estimate_on_postgresql(admin_client, make_subscription, monkeypatch):
    from django_webhooks.admin import common

    monkeypatch.setattr(common, "COUNT_LIMIT", 5)
    _bulk_log([make_subscription()], 40)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_webhooks_delivery")
    unfiltered = admin_client.get(url("delivery_changelist"))
    assert unfiltered.context["cl"].result_count == 40
    filtered = admin_client.get(url("delivery_changelist") + "?status__exact=pending")
    assert filtered.context["cl"].result_count == 5

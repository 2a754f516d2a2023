"""Fixtures of the admin tests: owners, a staff login with chosen permissions, a small delivery log."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from django_webhooks.models import DeliveryStatus, ErrorClass
from tests.admin import add_attempt


@pytest.fixture
def owner(django_user_model):
    return django_user_model.objects.create_user("acme-shop", password="x")


@pytest.fixture
def other_owner(django_user_model):
    return django_user_model.objects.create_user("globex", password="x")


@pytest.fixture
def staff(client, django_user_model):
    """``staff(*codenames)``: log the client in as staff with only these django_webhooks permissions."""

    def login(*codenames: str):
        user = django_user_model.objects.create_user("staffer", password="x", is_staff=True)
        user.user_permissions.set(
            Permission.objects.filter(content_type__app_label="django_webhooks", codename__in=codenames)
        )
        client.force_login(user)
        return client

    return login


@pytest.fixture
def log(make_subscription, make_delivery, owner, other_owner):
    """Two subscriptions of two owners and one staff-managed, with deliveries and attempts."""
    acme = make_subscription(
        "http://127.0.0.1:9/acme", owner_id=str(owner.pk), event_types=["order.*"], description="Acme ERP"
    )
    globex = make_subscription(
        "http://127.0.0.1:9/globex", owner_id=str(other_owner.pk), event_types=["order.created"], description="Globex"
    )
    staff_sub = make_subscription("http://127.0.0.1:9/internal", event_types=["order.deleted"], enabled=False)
    ok = make_delivery(acme, event_type="order.created", status=DeliveryStatus.SUCCEEDED, attempts=1)
    add_attempt(ok)
    failed = make_delivery(globex, event_type="order.created", status=DeliveryStatus.FAILED, attempts=1)
    add_attempt(failed, succeeded=False, status=500, error_class=ErrorClass.HTTP_STATUS, response_body="x" * 5000)
    old = make_delivery(
        staff_sub,
        event_type="order.deleted",
        status=DeliveryStatus.EXHAUSTED,
        created_at=timezone.now() - timedelta(days=400),
    )
    return {"acme": acme, "globex": globex, "staff": staff_sub, "ok": ok, "failed": failed, "old": old}

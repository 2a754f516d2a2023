"""The portal's audit log in the admin (django_webhooks/admin/audit.py): visible to staff, read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from django_webhooks.models import AuditAction, AuditLogEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def entry(owner):
    return AuditLogEntry.objects.create(
        owner_id=str(owner.pk),
        actor=f"portal link for owner {owner.pk}",
        action=AuditAction.SECRET_ROTATED,
        object_type="subscription",
        object_id="7",
        object_repr="https://erp.example.com/hooks",
        changes={"overlap_seconds": 86400},
    )


def test_staff_with_the_view_permission_read_the_log(staff, entry):
    client = staff("view_auditlogentry")
    listing = client.get(reverse("admin:django_webhooks_auditlogentry_changelist"))
    assert listing.status_code == 200
    assert "portal link for owner" in listing.content.decode()
    detail = client.get(reverse("admin:django_webhooks_auditlogentry_change", args=[entry.pk]))
    assert detail.status_code == 200
    assert "86400" in detail.content.decode()
    assert 'name="actor"' not in detail.content.decode()  # shown, not editable


def test_nobody_adds_changes_or_deletes_entries(admin_client, entry):
    assert admin_client.get(reverse("admin:django_webhooks_auditlogentry_add")).status_code == 403
    assert (
        admin_client.post(
            reverse("admin:django_webhooks_auditlogentry_delete", args=[entry.pk]), {"post": "yes"}
        ).status_code
        == 403
    )
    response = admin_client.post(
        reverse("admin:django_webhooks_auditlogentry_change", args=[entry.pk]), {"actor": "someone else"}
    )
    assert response.status_code == 403
    entry.refresh_from_db()
    assert entry.actor.startswith("portal link")


def test_search_by_owner_id(admin_client, entry):
    AuditLogEntry.objects.create(owner_id="99999", actor="x", action=AuditAction.LINK_OPENED)
    response = admin_client.get(reverse("admin:django_webhooks_auditlogentry_changelist"), {"q": entry.owner_id})
    assert list(response.context["cl"].result_list) == [entry]

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import override_settings

from django_webhooks.models import EventType

pytestmark = pytest.mark.django_db

SCHEMA = {"type": "object", "required": ["id"]}
DECLARED = {
    "order.created": {"description": "An order was placed.", "schema": SCHEMA, "example": {"id": 1}},
    "order.deleted": {"description": "An order was deleted.", "thin": True},
}


def sync(*args: str, event_types=DECLARED) -> str:
    out = io.StringIO()
    with override_settings(DJANGO_WEBHOOKS={"EVENT_TYPES": event_types}):
        call_command("webhooks_sync_event_types", *args, stdout=out)
    return out.getvalue()


def test_creates_declared_types():
    output = sync()
    assert "created order.created" in output and "created order.deleted" in output
    created = EventType.objects.get(name="order.created")
    assert (created.description, created.schema, created.example, created.thin) == (
        "An order was placed.",
        SCHEMA,
        {"id": 1},
        False,
    )
    assert EventType.objects.get(name="order.deleted").thin is True


def test_second_run_changes_nothing():
    sync()
    output = sync()
    assert "Event types are up to date" in output
    assert EventType.objects.count() == 2


def test_updates_changed_fields_and_unarchives():
    sync()
    EventType.objects.filter(name="order.deleted").update(archived=True)
    changed = {**DECLARED, "order.created": {**DECLARED["order.created"], "description": "Placed."}}
    output = sync(event_types=changed)
    assert "updated order.created (description)" in output
    assert "updated order.deleted (archived)" in output
    assert EventType.objects.get(name="order.created").description == "Placed."
    assert EventType.objects.get(name="order.deleted").archived is False


def test_archive_missing_is_opt_in():
    EventType.objects.create(name="invoice.paid")
    sync()
    assert EventType.objects.get(name="invoice.paid").archived is False
    output = sync("--archive-missing")
    assert "archived invoice.paid" in output
    assert EventType.objects.get(name="invoice.paid").archived is True


def test_dry_run_writes_nothing():
    output = sync("--dry-run")
    assert "Would have created order.created" in output
    assert not EventType.objects.exists()

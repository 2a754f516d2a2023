from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from django_webhooks.catalog import SPEC_KEYS
from django_webhooks.conf import SETTING_NAME, webhooks_settings
from django_webhooks.models import EventType


def declared_fields(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": spec.get("description", ""),
        "schema": spec.get("schema"),
        "example": spec.get("example"),
        "thin": bool(spec.get("thin", False)),
    }


class Command(BaseCommand):
    help = (
        f"Write the event types declared in {SETTING_NAME}['EVENT_TYPES'] to the event catalog "
        "(EventType rows): create missing ones, update description, schema, example and thin, and "
        "unarchive declared types. With --archive-missing, archive catalog entries no longer declared. "
        "Run it after deploys; the app never writes the catalog at import or startup."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--archive-missing",
            action="store_true",
            help="Archive event types in the database that the setting no longer declares.",
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would change, change nothing.")

    def handle(self, *args: Any, archive_missing: bool, dry_run: bool, **options: Any) -> None:
        declared = webhooks_settings.EVENT_TYPES
        if not isinstance(declared, dict):
            raise CommandError(f"{SETTING_NAME}['EVENT_TYPES'] must be a dict; run `manage.py check`.")
        changes: list[str] = []
        with transaction.atomic():
            existing = {event_type.name: event_type for event_type in EventType.objects.select_for_update()}
            for name, spec in sorted(declared.items()):
                wanted = declared_fields(spec or {})
                current = existing.get(name)
                if current is None:
                    changes.append(f"created {name}")
                    if not dry_run:
                        event_type = EventType(name=name, **wanted)
                        event_type.full_clean()
                        event_type.save()
                    continue
                changed = [field for field in SPEC_KEYS if getattr(current, field) != wanted[field]]
                if current.archived:
                    changed.append("archived")
                if not changed:
                    continue
                changes.append(f"updated {name} ({', '.join(changed)})")
                if not dry_run:
                    for field, value in wanted.items():
                        setattr(current, field, value)
                    current.archived = False
                    current.save()
            if archive_missing:
                for name, event_type in sorted(existing.items()):
                    if name not in declared and not event_type.archived:
                        changes.append(f"archived {name}")
                        if not dry_run:
                            event_type.archived = True
                            event_type.save(update_fields=["archived", "updated_at"])
        prefix = "Would have " if dry_run else ""
        for change in changes:
            self.stdout.write(f"  {prefix}{change}")
        summary = f"{len(changes)} change(s)" if changes else "Event types are up to date"
        self.stdout.write(self.style.SUCCESS(f"{summary}; {len(declared)} event type(s) declared."))

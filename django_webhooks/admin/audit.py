"""The portal's audit log, read-only for staff: who changed what of an owner's webhooks, and when."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import AuditLogEntry

ENTRY_FIELDS = (
    "created_at",
    "owner_id",
    "actor",
    "actor_user_id",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "changes",
)


@admin.register(AuditLogEntry)
class AuditLogEntryAdmin(admin.ModelAdmin):
    """Nobody adds, changes or deletes entries here: they record what happened."""

    list_display = ["created_at", "owner_id", "actor", "action", "object_type", "object_id", "object_repr"]
    list_filter = ["action", "object_type"]
    search_fields = ["=owner_id", "=object_id"]
    search_help_text = _("An owner id or an object id, exactly.")
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    fields = ENTRY_FIELDS
    readonly_fields = ENTRY_FIELDS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

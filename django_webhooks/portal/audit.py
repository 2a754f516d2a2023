"""Audit log entries of the portal: who (a user, or a portal link for an owner) changed what, when."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

from ..models import AuditAction, AuditLogEntry

if TYPE_CHECKING:
    from .access import PortalAccess


def record(
    access: PortalAccess,
    action: AuditAction,
    target: models.Model | None = None,
    *,
    changes: dict[str, Any] | None = None,
    object_repr: str | None = None,
) -> AuditLogEntry:
    """Add an entry for ``action`` by ``access`` on ``target`` (kept readable after it is deleted)."""
    return AuditLogEntry.objects.create(
        owner_id=access.owner_id,
        actor=access.actor[:255],
        actor_user_id=access.user_id,
        action=action,
        object_type=target._meta.model_name or "" if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        object_repr=(object_repr if object_repr is not None else str(target) if target is not None else "")[:255],
        changes=changes or {},
    )


def field_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """``{"field": [before, after]}`` for the fields whose value differs."""
    return {name: [before.get(name), value] for name, value in after.items() if before.get(name) != value}

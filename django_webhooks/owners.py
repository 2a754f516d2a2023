"""Owners: which object a subscription or event belongs to, stored as a string key."""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import models

from .conf import webhooks_settings


def get_owner_model() -> type[models.Model]:
    """The model named by ``OWNER_MODEL`` (default ``AUTH_USER_MODEL``)."""
    return apps.get_model(webhooks_settings.owner_model_label, require_ready=False)


def owner_key(owner: Any) -> str | None:
    """The ``owner_id`` stored for ``owner``: a model instance, a primary key, or None."""
    if owner is None:
        return None
    if isinstance(owner, models.Model):
        if owner.pk is None:
            raise ValueError(f"Owner {owner!r} has no primary key; save it first.")
        return str(owner.pk)
    return str(owner)


def get_owner(key: str | None) -> models.Model | None:
    """The owner instance for a stored ``owner_id``, or None."""
    if key is None:
        return None
    model = get_owner_model()
    return model._default_manager.filter(pk=key).first()


def request_user(request: Any) -> Any:
    """Default ``OWNER_RESOLVER``: the authenticated user owns their subscriptions."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user

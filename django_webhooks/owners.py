"""Owners: which object a subscription or event belongs to, stored as a string key."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import models

from .conf import webhooks_settings


def get_owner_model() -> type[models.Model]:
    """The model named by ``OWNER_MODEL`` (default ``AUTH_USER_MODEL``)."""
    return apps.get_model(webhooks_settings.owner_model_label, require_ready=False)


#: Longest ``owner_id`` the models store.
OWNER_KEY_MAX_LENGTH = 64


def owner_key(owner: Any) -> str | None:
    """The ``owner_id`` stored for ``owner``: a model instance, a primary key, or None."""
    if owner is None:
        return None
    if isinstance(owner, models.Model):
        if owner.pk is None:
            raise ValueError(f"Owner {owner!r} has no primary key; save it first.")
        owner = owner.pk
    key = str(owner)
    if len(key) > OWNER_KEY_MAX_LENGTH:
        raise ValueError(
            f"Owner key {key[:20]}... is {len(key)} characters; at most {OWNER_KEY_MAX_LENGTH} are stored."
        )
    return key


def get_owners(keys: Iterable[str | None]) -> dict[str, models.Model]:
    """The owner instances of stored ``owner_id`` values, in one query, keyed by ``owner_id``.

    Keys that are not valid primary keys of the owner model, or whose owner is gone, are left out.
    """
    model = get_owner_model()
    by_pk: dict[Any, str] = {}
    for key in set(keys):
        if key is None:
            continue
        try:
            by_pk[model._meta.pk.to_python(key)] = key
        except (ValidationError, ValueError, TypeError):
            continue
    if not by_pk:
        return {}
    return {by_pk[pk]: owner for pk, owner in model._default_manager.in_bulk(list(by_pk)).items() if pk in by_pk}


def get_owner(key: str | None) -> models.Model | None:
    """The owner instance for a stored ``owner_id``, or None."""
    return get_owners([key]).get(key) if key is not None else None


def request_user(request: Any) -> Any:
    """Default ``OWNER_RESOLVER``: the authenticated user owns their subscriptions.

    A custom resolver (a dotted path in ``OWNER_RESOLVER``) takes the DRF request and returns
    the owner: an instance of ``OWNER_MODEL``, its primary key, or None when the request has no
    owner (the API then answers 403). It runs on every API request, so keep it to one query.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user

"""Owners: which object a subscription or event belongs to, stored as a string key."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import models

from .capture.payloads import text_problem
from .conf import webhooks_settings
from .exceptions import InvalidOwner


def get_owner_model() -> type[models.Model]:
    """The model named by ``OWNER_MODEL`` (default ``AUTH_USER_MODEL``)."""
    return apps.get_model(webhooks_settings.owner_model_label, require_ready=False)


#: Longest ``owner_id`` the models store.
OWNER_KEY_MAX_LENGTH = 64


def owner_key(owner: Any) -> str | None:
    """The ``owner_id`` stored for ``owner``: an ``OWNER_MODEL`` instance, its primary key, or None.

    Raises :class:`~django_webhooks.exceptions.InvalidOwner` for an instance of another model
    (its primary key would name somebody else's owner), an unsaved instance, or a key that is
    not a valid primary key of ``OWNER_MODEL``.
    """
    if owner is None:
        return None
    model = get_owner_model()
    if isinstance(owner, models.Model):
        if not isinstance(owner, model):
            raise InvalidOwner(
                f"Owner {owner!r} is a {owner._meta.label}; owners are {model._meta.label} instances "
                f"(DJANGO_WEBHOOKS['OWNER_MODEL'])."
            )
        if owner.pk is None:
            raise InvalidOwner(f"Owner {owner!r} has no primary key; save it first.")
        owner = owner.pk
    elif isinstance(owner, bool) or not isinstance(owner, str | int | uuid.UUID):
        raise InvalidOwner(
            f"An owner is a {model._meta.label} instance or its primary key, not {type(owner).__name__}."
        )
    else:
        try:
            model._meta.pk.to_python(owner)
        except (ValidationError, ValueError, TypeError) as exc:
            raise InvalidOwner(f"{owner!r} is not a primary key of {model._meta.label}.") from exc
    key = str(owner)
    if len(key) > OWNER_KEY_MAX_LENGTH:
        raise InvalidOwner(
            f"Owner key {key[:20]}... is {len(key)} characters; at most {OWNER_KEY_MAX_LENGTH} are stored."
        )
    if text_problem(key):
        raise InvalidOwner(f"Owner key {key!r} {text_problem(key)}.")
    return key


def owner_accessor(spec: str | Callable[[models.Model], Any]) -> Callable[[models.Model], str | None]:
    """An owner accessor for bindings and bulk events: ``(instance) -> owner_id``.

    ``spec`` is a callable ``(instance) -> owner`` or a dotted attribute path (``"customer.user"``).
    For a path, the last step reads the foreign key's ``<name>_id`` column when it can, so the
    owner row itself is never fetched; that foreign key must point at ``OWNER_MODEL``.
    Every value is checked by :func:`owner_key`.
    """
    if not isinstance(spec, str):
        return lambda instance: owner_key(spec(instance))
    steps = spec.split(".")
    checked: set[tuple[Any, str]] = set()  # foreign keys already seen to point at OWNER_MODEL

    def resolve(instance: models.Model) -> str | None:
        target: Any = instance
        for step in steps[:-1]:
            target = getattr(target, step, None)
            if target is None:
                return None
        last = steps[-1]
        if isinstance(target, models.Model):
            field = _foreign_key(type(target), last)
            if field is not None:
                if (field, webhooks_settings.owner_model_label) not in checked:
                    _check_points_at_owner(field, spec)
                    checked.add((field, webhooks_settings.owner_model_label))
                key = getattr(target, field.attname)
                if type(key) is int:  # the column of a key to OWNER_MODEL: valid, short, plain
                    return str(key)
                return None if key is None else owner_key(key)
        return owner_key(getattr(target, last, None))

    return resolve


def _foreign_key(model: type[models.Model], name: str) -> Any:
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field if field.many_to_one and field.concrete else None


def _check_points_at_owner(field: Any, path: str) -> None:
    owner_model = get_owner_model()
    related = field.related_model
    if not (isinstance(related, type) and issubclass(related, owner_model)):
        raise InvalidOwner(
            f"Owner path {path!r} ends at {field.model._meta.label}.{field.name}, a foreign key to "
            f"{getattr(related, '_meta', None) and related._meta.label}, not to {owner_model._meta.label} (OWNER_MODEL)."
        )


def owner_path_problem(model: type[models.Model], path: str) -> str | None:
    """Why the attribute path ``path`` from ``model`` cannot lead to an ``OWNER_MODEL`` instance,
    when its model fields tell (a step that is not a field is not checked); None when fine."""
    steps = path.split(".")
    current: Any = model
    for index, step in enumerate(steps):
        try:
            field = current._meta.get_field(step)
        except FieldDoesNotExist:
            return None  # a property or method: known only at run time
        if not field.is_relation or field.related_model is None:
            return (
                f"{current._meta.label}.{step} is not a relation"
                if index < len(steps) - 1
                else (f"{current._meta.label}.{step} is not a foreign key to {get_owner_model()._meta.label}")
            )
        current = field.related_model
    owner_model = get_owner_model()
    if not (isinstance(current, type) and issubclass(current, owner_model)):
        return f"it leads to {current._meta.label}, not to {owner_model._meta.label} (OWNER_MODEL)"
    return None


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

"""Bindings: record an event when a bound model is created, updated or deleted.

Declared in ``DJANGO_WEBHOOKS["BINDINGS"]`` or with :meth:`BindingRegistry.register`::

    registry.register(
        "shop.Order", on=["update"], event_type="order.paid",
        fields=["status"], condition=lambda order, change: order.status == "paid",
        owner="customer.user",
    )

Signals only fire for ``save()`` and ``delete()``; for ``queryset.update()`` and ``bulk_create``
call :func:`django_webhooks.send_events_for_queryset`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import models
from django.db.models.signals import post_delete, post_init, post_save, pre_delete

from .conf import SETTING_NAME, import_dotted, webhooks_settings
from .owners import owner_key
from .payloads import PayloadBuilder, get_payload_builder

CHANGES = ("create", "update", "delete")
BINDING_KEYS = {"model", "on", "event_type", "fields", "condition", "payload", "owner"}

_ORIGINAL = "_webhooks_original"
_PENDING_DELETE = "_webhooks_pending_delete"
_MISSING = object()


def attribute_owner(path: str) -> Callable[[models.Model], str | None]:
    """An owner accessor following a dotted attribute path (``"customer.user"``).

    The last step reads the foreign key's ``<name>_id`` column when it can, so the owner row
    itself is never fetched.
    """
    steps = path.split(".")

    def resolve(instance: models.Model) -> str | None:
        target: Any = instance
        for step in steps[:-1]:
            target = getattr(target, step, None)
            if target is None:
                return None
        last = steps[-1]
        if isinstance(target, models.Model):
            try:
                field = target._meta.get_field(last)
            except FieldDoesNotExist:
                field = None
            if field is not None and field.many_to_one and field.concrete:
                return owner_key(getattr(target, field.attname))
        return owner_key(getattr(target, last, None))

    return resolve


@dataclass(frozen=True, eq=False)
class Binding:
    """One model change bound to one event type."""

    model: type[models.Model]
    on: frozenset[str]
    event_type: str
    fields: tuple[str, ...] | None
    condition: Callable[[models.Model, str], bool] | None
    payload: PayloadBuilder
    owner: Callable[[models.Model], str | None] | None

    def wants(self, instance: models.Model, change: str) -> bool:
        return self.condition is None or bool(self.condition(instance, change))

    def record(self, instance: models.Model) -> None:
        from .events import record_change

        record_change(self.event_type, self.payload(instance), self.owner(instance) if self.owner else None)


class BindingRegistry:
    """All bindings of the process, grouped by model so each signal runs one receiver."""

    def __init__(self) -> None:
        self._by_model: dict[type[models.Model], list[Binding]] = {}
        self._watched: dict[type[models.Model], tuple[str, ...]] = {}
        self._from_settings: list[Binding] = []
        self._names: dict[str, str] = {}

    def bindings_for(self, model: type[models.Model]) -> list[Binding]:
        return list(self._by_model.get(model, ()))

    def register(
        self,
        model: type[models.Model] | str,
        *,
        on: str | Iterable[str],
        event_type: str,
        fields: Iterable[str] | None = None,
        condition: Callable[[models.Model, str], bool] | str | None = None,
        payload: Any = None,
        owner: Callable[[models.Model], Any] | str | None = None,
    ) -> Binding:
        """Record ``event_type`` when ``model`` is changed as ``on`` says.

        ``fields`` limits updates to saves that changed one of them; ``condition`` is
        ``(instance, change) -> bool`` with change ``"create"``/``"update"``/``"delete"``;
        ``payload`` is a callable ``(instance) -> dict``, a DRF serializer class or a dotted path
        to either (default :func:`~django_webhooks.payloads.model_payload`); ``owner`` is a dotted
        attribute path or a callable ``(instance) -> owner``.
        """
        name = f"binding {event_type!r} on {model if isinstance(model, str) else model._meta.label}"
        model_class = self._resolve_model(model, name)
        changes = frozenset([on] if isinstance(on, str) else on)
        if not changes or not changes <= set(CHANGES):
            raise ImproperlyConfigured(f"{name}: 'on' must be a non-empty list of {', '.join(CHANGES)}; got {on!r}.")
        if not isinstance(event_type, str) or not event_type:
            raise ImproperlyConfigured(f"{name}: 'event_type' must be a non-empty string.")
        watched = None
        if fields is not None:
            if isinstance(fields, str):
                fields = [fields]
            watched = tuple(self._attname(model_class, field, name) for field in fields)
            if "update" not in changes:
                raise ImproperlyConfigured(f"{name}: 'fields' only applies to 'update' bindings.")
        binding = Binding(
            model=model_class,
            on=changes,
            event_type=event_type,
            fields=watched,
            condition=self._callable(condition, "condition", name),
            payload=get_payload_builder(payload, context=name),
            owner=self._owner(owner, name),
        )
        self._by_model.setdefault(model_class, []).append(binding)
        if watched:
            self._watched[model_class] = tuple(dict.fromkeys(self._watched.get(model_class, ()) + watched))
        self._connect(model_class)
        return binding

    def unregister(self, binding: Binding) -> None:
        bindings = self._by_model.get(binding.model, [])
        if binding in bindings:
            bindings.remove(binding)
        watched = tuple(dict.fromkeys(field for b in bindings for field in (b.fields or ())))
        self._watched[binding.model] = watched
        if not bindings:
            self._disconnect(binding.model)

    def load_from_settings(self) -> list[Binding]:
        """(Re)register the bindings of ``DJANGO_WEBHOOKS["BINDINGS"]``. Touches no database."""
        for binding in self._from_settings:
            self.unregister(binding)
        self._from_settings = []
        declared = webhooks_settings.BINDINGS
        if not isinstance(declared, list | tuple):
            raise ImproperlyConfigured(f"{SETTING_NAME}['BINDINGS'] must be a list of dicts.")
        for index, spec in enumerate(declared):
            where = f"{SETTING_NAME}['BINDINGS'][{index}]"
            if not isinstance(spec, dict):
                raise ImproperlyConfigured(f"{where} must be a dict, not {type(spec).__name__}.")
            unknown = set(spec) - BINDING_KEYS
            if unknown:
                raise ImproperlyConfigured(
                    f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid keys are {', '.join(sorted(BINDING_KEYS))}."
                )
            missing = {"model", "on", "event_type"} - set(spec)
            if missing:
                raise ImproperlyConfigured(f"{where}: missing {', '.join(sorted(missing))}.")
            try:
                self._from_settings.append(self.register(**spec))
            except ImproperlyConfigured as exc:
                raise ImproperlyConfigured(f"{where}: {exc}") from exc
        return list(self._from_settings)

    # --- resolution ------------------------------------------------------------------------

    @staticmethod
    def _resolve_model(model: type[models.Model] | str, name: str) -> type[models.Model]:
        if isinstance(model, str):
            try:
                return apps.get_model(model)
            except (LookupError, ValueError) as exc:
                raise ImproperlyConfigured(f"{name}: no model {model!r} ('app_label.ModelName'): {exc}") from exc
        if isinstance(model, type) and issubclass(model, models.Model):
            return model
        raise ImproperlyConfigured(f"{name}: 'model' must be a model class or 'app_label.ModelName'.")

    def _attname(self, model: type[models.Model], field_name: str, name: str) -> str:
        try:
            field = model._meta.get_field(field_name)
        except FieldDoesNotExist as exc:
            raise ImproperlyConfigured(
                f"{name}: 'fields' names {field_name!r}, not a field of {model._meta.label}."
            ) from exc
        if not getattr(field, "concrete", False):
            raise ImproperlyConfigured(f"{name}: 'fields' entry {field_name!r} is not a concrete field.")
        self._names[field.attname] = field.name
        return field.attname

    @staticmethod
    def _callable(spec: Any, option: str, name: str) -> Callable | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            spec = import_dotted(spec, f"{name}: {option}")
        if not callable(spec):
            raise ImproperlyConfigured(f"{name}: {option} must be a callable or a dotted path to one.")
        return spec

    @staticmethod
    def _owner(spec: Any, name: str) -> Callable[[models.Model], str | None] | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            return attribute_owner(spec)
        if callable(spec):
            return lambda instance: owner_key(spec(instance))
        raise ImproperlyConfigured(f"{name}: owner must be a dotted attribute path or a callable.")

    # --- signals ---------------------------------------------------------------------------

    def _uid(self, model: type[models.Model], signal: str) -> str:
        return f"django_webhooks.bindings.{id(self)}.{model._meta.label}.{signal}"

    def _connect(self, model: type[models.Model]) -> None:
        post_save.connect(self._on_save, sender=model, dispatch_uid=self._uid(model, "save"), weak=False)
        pre_delete.connect(self._on_pre_delete, sender=model, dispatch_uid=self._uid(model, "pre_delete"), weak=False)
        post_delete.connect(self._on_delete, sender=model, dispatch_uid=self._uid(model, "delete"), weak=False)
        if self._watched.get(model):
            post_init.connect(self._on_init, sender=model, dispatch_uid=self._uid(model, "init"), weak=False)

    def _disconnect(self, model: type[models.Model]) -> None:
        post_save.disconnect(sender=model, dispatch_uid=self._uid(model, "save"))
        pre_delete.disconnect(sender=model, dispatch_uid=self._uid(model, "pre_delete"))
        post_delete.disconnect(sender=model, dispatch_uid=self._uid(model, "delete"))
        post_init.disconnect(sender=model, dispatch_uid=self._uid(model, "init"))

    def _remember(self, instance: models.Model, watched: tuple[str, ...], update_fields: Any = None) -> None:
        values = instance.__dict__
        if update_fields is not None:
            original = values.setdefault(_ORIGINAL, {})
            for field in watched:
                if {field, self._names.get(field)} & update_fields:
                    original[field] = values.get(field, _MISSING)
            return
        values[_ORIGINAL] = {field: values.get(field, _MISSING) for field in watched}

    def _on_init(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        watched = self._watched.get(sender)
        if watched:
            self._remember(instance, watched)

    def _changed(self, binding: Binding, instance: models.Model, update_fields: Any) -> bool:
        original = instance.__dict__.get(_ORIGINAL, {})
        for field in binding.fields or ():
            if update_fields is not None and not ({field, self._names.get(field)} & update_fields):
                continue
            before = original.get(field, _MISSING)
            if before is _MISSING or before != instance.__dict__.get(field, _MISSING):
                return True
        return False

    def _on_save(
        self, sender: type[models.Model], instance: models.Model, created: bool, raw: bool = False, **kwargs: Any
    ) -> None:
        if raw:
            return
        change = "create" if created else "update"
        update_fields = kwargs.get("update_fields")
        for binding in self._by_model.get(sender, ()):
            if change not in binding.on:
                continue
            if binding.fields and change == "update" and not self._changed(binding, instance, update_fields):
                continue
            if binding.wants(instance, change):
                binding.record(instance)
        watched = self._watched.get(sender)
        if watched:
            self._remember(instance, watched, update_fields)

    def _on_pre_delete(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        pending = [
            (binding, binding.payload(instance), binding.owner(instance) if binding.owner else None)
            for binding in self._by_model.get(sender, ())
            if "delete" in binding.on and binding.wants(instance, "delete")
        ]
        if pending:
            instance.__dict__[_PENDING_DELETE] = pending

    def _on_delete(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        from .events import record_change

        for binding, data, owner_id in instance.__dict__.pop(_PENDING_DELETE, ()):
            record_change(binding.event_type, data, owner_id)


#: The process-wide registry; ``DjangoWebhooksConfig.ready()`` loads the settings into it.
registry = BindingRegistry()

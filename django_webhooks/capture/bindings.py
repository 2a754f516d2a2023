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

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured
from django.db import connections, models, router
from django.db.models.signals import post_delete, post_init, post_save, pre_delete, pre_save

from ..conf import SETTING_NAME, import_dotted, webhooks_settings
from ..exceptions import WebhooksConfigurationError
from ..owners import owner_accessor, owner_path_problem
from .events import check_change, record_change
from .payloads import PayloadBuilder, get_payload_builder

CHANGES = ("create", "update", "delete")
BINDING_KEYS = {"model", "on", "event_type", "fields", "condition", "payload", "owner"}

logger = logging.getLogger("django_webhooks.capture.bindings")

_ORIGINAL = "_webhooks_original"
_PENDING_DELETE = "_webhooks_pending_delete"
_MISSING = object()


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

    def check(self, instance: models.Model) -> None:
        """Raise what recording ``instance``'s event would refuse (run before an autocommit save)."""
        if self.owner:
            self.owner(instance)
        check_change(self.event_type, self.payload(instance))

    def record(self, instance: models.Model, *, committed: bool) -> None:
        """Record the event of ``instance``'s change.

        Before the change commits, any error raises and the change rolls back with it. After
        an autocommit save nothing raises: the event is recorded with the error, never dropped.
        """
        if not committed:
            record_change(self.event_type, self.payload(instance), self.owner(instance) if self.owner else None)
            return
        errors: list[str] = []
        owner_id = data = None
        try:
            owner_id = self.owner(instance) if self.owner else None
        except Exception as exc:
            errors.append(f"owner: {exc}")
        try:
            data = self.payload(instance)
        except Exception as exc:
            logger.exception("The payload builder of %s failed after its change committed", self.event_type)
            errors.append(f"payload builder: {type(exc).__name__}: {exc}")
        record_change(self.event_type, data, owner_id, committed=True, errors=errors)


class BindingRegistry:
    """All bindings of the process, grouped by model so each signal runs one receiver."""

    def __init__(self) -> None:
        self._by_model: dict[type[models.Model], list[Binding]] = {}
        self._watched: dict[type[models.Model], tuple[str, ...]] = {}
        self._from_settings: list[Binding] = []
        self._names: dict[str, str] = {}

    def bindings_for(self, model: type[models.Model]) -> list[Binding]:
        return list(self._by_model.get(model, ()))

    def register(self, model: type[models.Model] | str, **options: Any) -> Binding:
        """Record ``options["event_type"]`` when ``model`` is changed; see :meth:`build` for the options."""
        return self._attach(self.build(model, **options))

    def _attach(self, binding: Binding) -> Binding:
        self._by_model.setdefault(binding.model, []).append(binding)
        if binding.fields:
            self._watched[binding.model] = tuple(dict.fromkeys(self._watched.get(binding.model, ()) + binding.fields))
        self._connect(binding.model)
        return binding

    def build(
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
        """A binding recording ``event_type`` when ``model`` is changed as ``on`` says (not registered).

        Raises ``ImproperlyConfigured`` naming the binding for anything wrong. ``fields`` limits updates to saves that changed one of them; ``condition`` is
        ``(instance, change) -> bool`` with change ``"create"``/``"update"``/``"delete"``;
        ``payload`` is a callable ``(instance) -> dict``, a DRF serializer class or a dotted path
        to either (default :func:`~django_webhooks.capture.payloads.model_payload`); ``owner`` is a dotted
        attribute path or a callable ``(instance) -> owner``.
        """
        name = f"binding {event_type!r} on {model if isinstance(model, str) else model._meta.label}"
        model_class = self._resolve_model(model, name)
        changes = frozenset([on] if isinstance(on, str) else on)
        if not changes or not changes <= set(CHANGES):
            raise WebhooksConfigurationError(
                f"{name}: 'on' must be a non-empty list of {', '.join(CHANGES)}; got {on!r}."
            )
        if not isinstance(event_type, str) or not event_type:
            raise WebhooksConfigurationError(f"{name}: 'event_type' must be a non-empty string.")
        watched = None
        if fields is not None:
            if isinstance(fields, str):
                fields = [fields]
            watched = tuple(self._attname(model_class, field, name) for field in fields)
            if "update" not in changes:
                raise WebhooksConfigurationError(f"{name}: 'fields' only applies to 'update' bindings.")
        if isinstance(owner, str):
            problem = owner_path_problem(model_class, owner)
            if problem:
                raise WebhooksConfigurationError(f"{name}: owner path {owner!r} cannot give an owner: {problem}.")
        return Binding(
            model=model_class,
            on=changes,
            event_type=event_type,
            fields=watched,
            condition=self._callable(condition, "condition", name),
            payload=get_payload_builder(payload, context=name),
            owner=self._owner(owner, name),
        )

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
        for index, spec in enumerate(_declared_bindings()):
            self._from_settings.append(self._attach(self._build_declared(index, spec)))
        return list(self._from_settings)

    def _build_declared(self, index: int, spec: Any) -> Binding:
        """The binding ``BINDINGS[index]`` declares; raises ``ImproperlyConfigured`` naming the entry."""
        where = _where(index)
        if not isinstance(spec, dict):
            raise WebhooksConfigurationError(f"{where} must be a dict, not {type(spec).__name__}.")
        unknown = set(spec) - BINDING_KEYS
        if unknown:
            raise WebhooksConfigurationError(
                f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))}; "
                f"valid keys are {', '.join(sorted(BINDING_KEYS))}."
            )
        missing = {"model", "on", "event_type"} - set(spec)
        if missing:
            raise WebhooksConfigurationError(f"{where}: missing {', '.join(sorted(missing))}.")
        try:
            return self.build(**spec)
        except ImproperlyConfigured as exc:
            raise WebhooksConfigurationError(f"{where}: {exc}") from exc

    def check_declared(self) -> list[str]:
        """Every problem of ``BINDINGS``, registering nothing (check E011): the messages
        :meth:`load_from_settings` would raise, one per entry, and the entries whose event type
        ``EVENT_TYPES`` does not declare (the checks cannot read the catalog table)."""
        try:
            declared = _declared_bindings()
        except ImproperlyConfigured as exc:
            return [str(exc)]
        event_types = webhooks_settings.EVENT_TYPES
        known = event_types if isinstance(event_types, dict) else {}
        problems = []
        for index, spec in enumerate(declared):
            try:
                self._build_declared(index, spec)
            except ImproperlyConfigured as exc:
                problems.append(str(exc))
            event_type = spec.get("event_type") if isinstance(spec, dict) else None
            if isinstance(spec, dict) and not (isinstance(event_type, str) and event_type in known):
                problems.append(
                    f"{_where(index)}: event type {event_type!r} is not declared in {SETTING_NAME}['EVENT_TYPES']."
                )
        return problems

    # --- resolution ------------------------------------------------------------------------

    @staticmethod
    def _resolve_model(model: type[models.Model] | str, name: str) -> type[models.Model]:
        if isinstance(model, str):
            try:
                return apps.get_model(model)
            except (LookupError, ValueError) as exc:
                raise WebhooksConfigurationError(f"{name}: no model {model!r} ('app_label.ModelName'): {exc}") from exc
        if isinstance(model, type) and issubclass(model, models.Model):
            return model
        raise WebhooksConfigurationError(f"{name}: 'model' must be a model class or 'app_label.ModelName'.")

    def _attname(self, model: type[models.Model], field_name: str, name: str) -> str:
        try:
            field = model._meta.get_field(field_name)
        except FieldDoesNotExist as exc:
            raise WebhooksConfigurationError(
                f"{name}: 'fields' names {field_name!r}, not a field of {model._meta.label}."
            ) from exc
        if not isinstance(field, models.Field) or not field.concrete:
            raise WebhooksConfigurationError(f"{name}: 'fields' entry {field_name!r} is not a concrete field.")
        self._names[field.attname] = field.name
        return field.attname

    @staticmethod
    def _callable(spec: Any, option: str, name: str) -> Callable | None:
        if spec is None:
            return None
        if isinstance(spec, str):
            spec = import_dotted(spec, f"{name}: {option}")
        if not callable(spec):
            raise WebhooksConfigurationError(f"{name}: {option} must be a callable or a dotted path to one.")
        return spec

    @staticmethod
    def _owner(spec: Any, name: str) -> Callable[[models.Model], str | None] | None:
        if spec is None:
            return None
        if isinstance(spec, str) or callable(spec):
            return owner_accessor(spec)
        raise WebhooksConfigurationError(f"{name}: owner must be a dotted attribute path or a callable.")

    # --- signals ---------------------------------------------------------------------------

    def _uid(self, model: type[models.Model], signal: str) -> str:
        return f"django_webhooks.capture.bindings.{id(self)}.{model._meta.label}.{signal}"

    def _connect(self, model: type[models.Model]) -> None:
        pre_save.connect(self._on_pre_save, sender=model, dispatch_uid=self._uid(model, "pre_save"), weak=False)
        post_save.connect(self._on_save, sender=model, dispatch_uid=self._uid(model, "save"), weak=False)
        pre_delete.connect(self._on_pre_delete, sender=model, dispatch_uid=self._uid(model, "pre_delete"), weak=False)
        post_delete.connect(self._on_delete, sender=model, dispatch_uid=self._uid(model, "delete"), weak=False)
        if self._watched.get(model):
            post_init.connect(self._on_init, sender=model, dispatch_uid=self._uid(model, "init"), weak=False)

    def _disconnect(self, model: type[models.Model]) -> None:
        pre_save.disconnect(sender=model, dispatch_uid=self._uid(model, "pre_save"))
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

    def _firing(
        self, sender: type[models.Model], instance: models.Model, change: str, update_fields: Any
    ) -> list[Binding]:
        return [
            binding
            for binding in self._by_model.get(sender, ())
            if change in binding.on
            and not (binding.fields and change == "update" and not self._changed(binding, instance, update_fields))
            and binding.wants(instance, change)
        ]

    def _on_pre_save(
        self,
        sender: type[models.Model],
        instance: models.Model,
        raw: bool = False,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        """In autocommit, refuse a change whose event could not be recorded, before it is written.

        Inside a transaction ``post_save`` raises before the commit instead, and the change
        rolls back with it.
        """
        if raw or connections[using or router.db_for_write(sender)].in_atomic_block:
            return
        change = "create" if instance._state.adding else "update"
        for binding in self._firing(sender, instance, change, kwargs.get("update_fields")):
            binding.check(instance)

    def _on_save(
        self,
        sender: type[models.Model],
        instance: models.Model,
        created: bool,
        raw: bool = False,
        using: str | None = None,
        **kwargs: Any,
    ) -> None:
        if raw:
            return
        change = "create" if created else "update"
        update_fields = kwargs.get("update_fields")
        committed = not connections[using or router.db_for_write(sender)].in_atomic_block
        for binding in self._firing(sender, instance, change, update_fields):
            binding.record(instance, committed=committed)
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
        # Django deletes inside a transaction, so these raise before its commit.
        for binding, data, owner_id in instance.__dict__.pop(_PENDING_DELETE, ()):
            record_change(binding.event_type, data, owner_id)


def _declared_bindings() -> list[Any] | tuple[Any, ...]:
    """``BINDINGS``; raises ``WebhooksConfigurationError`` when it is not a list."""
    declared = webhooks_settings.BINDINGS
    if not isinstance(declared, list | tuple):
        raise WebhooksConfigurationError(f"{SETTING_NAME}['BINDINGS'] must be a list of dicts.")
    return declared


def _where(index: int) -> str:
    return f"{SETTING_NAME}['BINDINGS'][{index}]"


#: The process-wide registry; ``DjangoWebhooksConfig.ready()`` loads the settings into it.
registry = BindingRegistry()

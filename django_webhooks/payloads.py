"""Payload builders: turn a model instance into the JSON-safe ``data`` of an event."""

from __future__ import annotations

import base64
import datetime
import decimal
import uuid
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.functional import Promise

from .conf import import_dotted

#: A payload builder: ``(instance) -> dict``.
PayloadBuilder = Callable[[models.Model], dict]


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` hook for the values Django models hold.

    Decimal becomes a string (no float rounding), UUID its hex form with dashes, dates, times and
    datetimes ISO-8601, durations seconds, files their name, bytes base64, sets a list.
    """
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, FieldFile):
        return value.name or None
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, Promise):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _file_value(file: FieldFile) -> dict | None:
    if not file:
        return None
    try:
        url = file.url
    except (ValueError, NotImplementedError):
        url = None
    return {"name": file.name, "url": url}


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, dict):
        return {str(key): _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return _json_safe(json_default(value))


def model_payload(instance: models.Model) -> dict:
    """The default payload: every concrete field of ``instance``, JSON-safe.

    Foreign keys appear as ``<name>_id``; file fields as ``{"name": ..., "url": ...}`` (or None).
    """
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        value = getattr(instance, field.attname)
        if isinstance(field, models.FileField):
            data[field.attname] = _file_value(value)
        elif value is None or isinstance(value, str | int | bool):
            data[field.attname] = value
        else:
            data[field.attname] = _json_safe(value)
    return data


def serializer_payload(serializer_class: type) -> PayloadBuilder:
    """A builder that renders an instance with a DRF serializer class."""

    def build(instance: models.Model) -> dict:
        return dict(serializer_class(instance).data)

    build.__qualname__ = f"serializer_payload({serializer_class.__name__})"
    return build


def get_payload_builder(spec: Any, *, context: str = "payload") -> PayloadBuilder:
    """Resolve a ``payload`` option: None (model_payload), a callable, a serializer class or a dotted path.

    ``context`` names the binding or call in error messages.
    """
    if spec is None:
        return model_payload
    if isinstance(spec, str):
        spec = import_dotted(spec, f"{context}: payload")
    if isinstance(spec, type):
        from rest_framework.serializers import BaseSerializer

        if issubclass(spec, BaseSerializer):
            return serializer_payload(spec)
        raise ImproperlyConfigured(f"{context}: payload class {spec.__qualname__} is not a DRF serializer.")
    if callable(spec):
        return spec
    raise ImproperlyConfigured(
        f"{context}: payload must be a callable, a serializer class or a dotted path, not {spec!r}."
    )

"""Payload builders: turn a model instance into the JSON-safe ``data`` of an event."""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import uuid
from collections.abc import Callable
from typing import Any

from django.db import models
from django.db.models.fields.files import FieldFile
from django.utils.functional import Promise
from rest_framework.serializers import BaseSerializer

from ..conf import import_dotted
from ..exceptions import WebhooksConfigurationError

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
        kind = type(value)
        if value is None or kind is str or kind is int or kind is bool:
            data[field.attname] = value
        elif isinstance(field, models.FileField):
            data[field.attname] = _file_value(value)
        elif isinstance(value, str):  # a str subclass such as a TextChoices member: its plain text
            data[field.attname] = str.__str__(value)
        elif isinstance(value, int) and not isinstance(value, bool):  # an IntegerChoices member
            data[field.attname] = int(value)
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
        if issubclass(spec, BaseSerializer):
            return serializer_payload(spec)
        raise WebhooksConfigurationError(f"{context}: payload class {spec.__qualname__} is not a DRF serializer.")
    if callable(spec):
        return spec
    raise WebhooksConfigurationError(
        f"{context}: payload must be a callable, a serializer class or a dotted path, not {spec!r}."
    )


# --- JSON safety -------------------------------------------------------------------------------

#: Deepest nesting of objects and arrays an event's data (or any JSON a user stores) may have.
MAX_JSON_DEPTH = 32


def _json_path(parts: tuple[str | int, ...]) -> str:
    path = "$"
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if part.isidentifier() else f"[{part!r}]")
    return path


def text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which databases refuse in JSON"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "contains a lone UTF-16 surrogate, which is not valid Unicode"
    return None


def _plainly_safe(value: Any, depth: int) -> bool:
    """True when ``value`` is built of plain JSON types only and breaks no rule of
    :func:`json_problems` (the fast path: no path is built unless something is wrong)."""
    kind = type(value)
    if kind is str:
        return "\x00" not in value and (value.isascii() or text_problem(value) is None)
    if kind is int or kind is bool or value is None:
        return True
    if kind is float:
        return value - value == 0.0  # False for NaN and infinities
    if kind is dict:
        if depth >= MAX_JSON_DEPTH:
            return False
        for key, child in value.items():
            if type(key) is not str or not _plainly_safe(key, depth) or not _plainly_safe(child, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return depth < MAX_JSON_DEPTH and all(_plainly_safe(child, depth + 1) for child in value)
    return False  # another type: the full walk converts it and decides


def json_problems(value: Any, *, max_depth: int = MAX_JSON_DEPTH, convert: bool = True) -> list[str]:
    """Every reason ``value`` cannot be stored and sent as JSON, each naming its path (``$.a[0]``).

    Refused: NaN and infinities, strings (values and keys) holding NUL or a lone surrogate,
    object keys that are not strings, nesting deeper than ``max_depth``, and values JSON cannot
    represent. With ``convert``, values :func:`json_default` knows (Decimal, datetime, ...) are
    checked as they will be written. Empty when ``value`` is safe. One rule for the capture
    side (``send_event``, bindings) and the API's JSON fields.
    """
    if max_depth == MAX_JSON_DEPTH and _plainly_safe(value, 0):
        return []
    problems: list[str] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack and len(problems) < 20:
        item, path = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem:
                problems.append(f"{_json_path(path)}: {problem}")
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                problems.append(f"{_json_path(path)}: {item!r} is not a JSON number")
        elif isinstance(item, dict | list | tuple):
            if len(path) >= max_depth:
                problems.append(f"{_json_path(path)}: nested deeper than {max_depth} levels")
                continue
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        problems.append(f"{_json_path(path)}: key {key!r} is not a string")
                        continue
                    problem = text_problem(key)
                    if problem:
                        problems.append(f"{_json_path(path)}: a key {problem}")
                        continue
                    stack.append((child, (*path, key)))
            else:
                stack.extend((child, (*path, index)) for index, child in enumerate(item))
        elif convert:
            try:
                stack.append((json_default(item), path))
            except TypeError:
                problems.append(f"{_json_path(path)}: {type(item).__name__} is not JSON-serializable")
        else:
            problems.append(f"{_json_path(path)}: {type(item).__name__} is not a JSON value")
    return problems


#: Compact, strict JSON with the model values :func:`json_default` knows; built once (``json.dumps``
#: with options builds a new encoder on every call).
JSON_ENCODER = json.JSONEncoder(default=json_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sanitized(value: Any, depth: int = 0) -> Any:
    """A storable copy of ``value`` for an event recorded with errors (never sent): offending
    floats become null, bad text gets replacement characters, non-string keys become strings, deep parts null."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if depth >= MAX_JSON_DEPTH:
        return None
    if isinstance(value, dict):
        return {sanitized(str(key)): sanitized(child, depth + 1) for key, child in value.items()}
    if isinstance(value, list | tuple):
        return [sanitized(child, depth + 1) for child in value]
    try:
        return sanitized(json_default(value), depth)
    except TypeError:
        return repr(value)

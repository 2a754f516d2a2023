"""The event catalog: event type names and patterns, what a pattern selects, and the catalog entries.

Users name event types in settings (``EVENT_TYPES``, ``BINDINGS``), in ``send_event()`` and in
their subscriptions; every rule about those names lives here:

* syntax: :func:`validate_event_type_name` (``order.created``: dot-separated words of letters,
  digits and ``_``) and :func:`validate_event_type_pattern` (a name, ``order.*`` or ``*``);
* matching: :func:`type_matches` (``*`` alone matches every type, a ``*`` segment exactly one
  segment) and :func:`patterns_matching` (the subscription entries that select a name);
* entries: ``EVENT_TYPES`` merged with ``EventType`` rows (a row wins), the table cached per
  process for :data:`CATALOG_TTL` seconds: :func:`known_event_types`, :func:`event_type_spec`
  (refuses unknown and archived types), :func:`validate_subscribed_event_types` and
  :func:`validate_active_event_type` (the admin form's and the API's rules), :func:`thin_types`;
* JSON Schemas: :func:`json_schema_problem`, the one rule the system checks (E010), the admin
  form and ``send_event()`` apply, and :func:`schema_errors`;
* versions: an entry's current ``version`` and the older ``versions`` still served, each with
  the converter that renders the data of the version above it as its own
  (:func:`version_problems` and :func:`converter_problems`, checks E021/E022; :func:`convert`,
  used at fan-out; :func:`pin_event_versions` and :func:`validate_event_versions`, the
  subscription's pins in the admin form and the API);
* built-in types: the operational events the engine sends about an endpoint
  (:data:`BUILTIN_EVENT_TYPES`, ``webhook.endpoint.*``), selected only by their own name or by
  :data:`OPERATIONAL_PATTERN`, never by ``*`` (:func:`is_operational`).

:mod:`django_webhooks.models` imports the name validators from here (its field validators and
migrations name them), so this module reaches the ``EventType`` model through the app registry.
"""

from __future__ import annotations

import copy
import functools
import re
import time
from collections.abc import Callable, Iterable, Mapping
from itertools import product
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from .conf import SETTING_NAME, import_dotted, webhooks_settings
from .exceptions import EventVersionError, UnknownEventType, WebhooksConfigurationError

# --- names and patterns ----------------------------------------------------------------------

#: An event type name. ``\Z``, not ``$``: ``$`` also matches before a trailing newline.
EVENT_TYPE_NAME_RE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*\Z")
#: A subscription entry: a name, ``*``, or a name some of whose segments after the first are ``*``.
EVENT_TYPE_PATTERN_RE = re.compile(r"^(\*|[A-Za-z0-9_]+(\.([A-Za-z0-9_]+|\*))*)\Z")
WILDCARD = "*"
#: The EventType fields ``webhooks_sync_event_types`` writes from an ``EVENT_TYPES`` entry.
SPEC_KEYS = ("description", "schema", "example", "thin")
#: Keys an ``EVENT_TYPES`` entry may have: :data:`SPEC_KEYS` and its versions (settings only:
#: their converters are code).
DECLARATION_KEYS = (*SPEC_KEYS, "version", "versions")
#: Keys of an older version's entry in ``versions``.
OLDER_VERSION_KEYS = ("description", "schema", "example", "converter")
#: The version of a type declared without ``version`` (and of every ``EventType``-only type).
FIRST_VERSION = 1
#: Names with more segments get only the one-``*`` patterns from :func:`patterns_matching`.
MAX_PATTERN_SEGMENTS = 6


def validate_event_type_name(value: Any) -> None:
    """Refuse ``value`` unless it is an event type name (``order.created``); raises ``ValidationError``."""
    if not isinstance(value, str) or not EVENT_TYPE_NAME_RE.match(value):
        raise ValidationError(
            _("%(value)r is not a valid event type: use dot-separated words of letters, digits and _ (order.created)."),
            code="invalid_event_type",
            params={"value": value},
        )


def validate_event_type_pattern(value: Any) -> None:
    """Refuse ``value`` unless it is a name or a pattern (``order.*``, ``*``); raises ``ValidationError``."""
    if not isinstance(value, str) or not EVENT_TYPE_PATTERN_RE.match(value):
        raise ValidationError(
            _("%(value)r is not a valid event type or pattern (order.created, order.*, *)."),
            code="invalid_event_type_pattern",
            params={"value": value},
        )


# --- built-in event types ----------------------------------------------------------------------

#: Operational events (:mod:`django_webhooks.delivery.alerts`): sent about a subscription's endpoint
#: to its owner's other subscriptions that ask for them.
ENDPOINT_FAILING = "webhook.endpoint.failing"
ENDPOINT_RECOVERED = "webhook.endpoint.recovered"
ENDPOINT_DISABLED = "webhook.endpoint.disabled"
#: The one pattern that selects the operational events besides their names.
OPERATIONAL_PATTERN = "webhook.endpoint.*"

_TIME = {"type": ["string", "null"], "format": "date-time"}
_ENDPOINT_PROPERTIES: dict[str, Any] = {
    "subscription_id": {"type": "integer", "description": "The subscription whose endpoint this is about."},
    "url": {"type": "string", "description": "Its URL without query string and fragment."},
    "failing_since": {**_TIME, "description": "First failed attempt of the incident."},
    "consecutive_failures": {"type": "integer", "minimum": 0},
    "budget_percent": {
        "type": ["integer", "null"],
        "description": "Percent of AUTO_DISABLE_AFTER spent failing (null without auto-disable).",
    },
    "disable_at": {**_TIME, "description": "When it is disabled unless an attempt succeeds first."},
    "last_status": {"type": ["integer", "null"], "description": "HTTP status of the newest attempt."},
    "last_error": {"type": ["string", "null"], "description": "Error class of the newest attempt."},
    "reason": {"type": "string"},
}


def _endpoint_schema(*extra: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["subscription_id", "url", "failing_since", "consecutive_failures", "reason", *extra],
        "properties": {**_ENDPOINT_PROPERTIES, **properties},
    }


_EXAMPLE = {
    "subscription_id": 42,
    "url": "https://hooks.example.com/orders",
    "failing_since": "2025-03-01T08:00:00Z",
    "consecutive_failures": 4,
    "budget_percent": 0,
    "disable_at": "2025-03-06T08:00:00Z",
    "last_status": 503,
    "last_error": None,
}

#: Types the engine itself sends; a declaration or ``EventType`` row of the same name is ignored.
BUILTIN_EVENT_TYPES: dict[str, dict[str, Any]] = {
    ENDPOINT_FAILING: {
        "description": "One of your webhook endpoints is failing: sent once per incident when it has "
        "failed ALERT_FAILING_AFTER times in a row, and once more at each share of its failure "
        "allowance (ALERT_BUDGET_THRESHOLDS) it spends before it is disabled.",
        "schema": _endpoint_schema(
            "alert",
            "threshold_percent",
            alert={"enum": ["failing", "budget"]},
            threshold_percent={"type": ["integer", "null"], "description": "The budget threshold crossed."},
        ),
        "example": {
            **_EXAMPLE,
            "alert": "failing",
            "threshold_percent": None,
            "reason": "4 consecutive attempts failed.",
        },
    },
    ENDPOINT_RECOVERED: {
        "description": "A webhook endpoint that was reported failing answered with a 2xx again; the incident is over.",
        "schema": _endpoint_schema("recovered_at", recovered_at={"type": "string", "format": "date-time"}),
        "example": {
            **_EXAMPLE,
            "consecutive_failures": 12,
            "budget_percent": 10,
            "disable_at": None,
            "last_status": 200,
            "recovered_at": "2025-03-01T20:00:00Z",
            "reason": "An attempt succeeded after 12 consecutive failures.",
        },
    },
    ENDPOINT_DISABLED: {
        "description": "A webhook endpoint was disabled (failing for AUTO_DISABLE_AFTER, 410 Gone, or by a "
        "person); its events wait until it is enabled again.",
        "schema": _endpoint_schema(
            "cause",
            "disabled_at",
            cause={"enum": ["auto", "gone", "manual"]},
            disabled_at={"type": "string", "format": "date-time"},
        ),
        "example": {
            **_EXAMPLE,
            "consecutive_failures": 60,
            "budget_percent": 100,
            "disable_at": None,
            "cause": "auto",
            "disabled_at": "2025-03-06T08:00:00Z",
            "reason": "Disabled automatically: every delivery failed for 5 days (since 2025-03-01 08:00 UTC).",
        },
    },
}
OPERATIONAL_EVENT_TYPES = frozenset(BUILTIN_EVENT_TYPES)


def is_operational(event_type: str) -> bool:
    """Whether ``event_type`` is an operational event (about an endpoint, sent by the engine)."""
    return event_type in OPERATIONAL_EVENT_TYPES


def is_pattern(entry: str) -> bool:
    """Whether a subscription entry is a pattern (has a ``*``) rather than a name."""
    return WILDCARD in entry


def type_matches(pattern: str, event_type: str) -> bool:
    """``*`` matches every type; otherwise a ``*`` segment matches exactly one segment (``order.*``).

    Operational types are the exception: only their own name and :data:`OPERATIONAL_PATTERN`
    select them, so a subscription to ``*`` does not start receiving them.
    """
    if event_type in OPERATIONAL_EVENT_TYPES:
        return pattern in (event_type, OPERATIONAL_PATTERN)
    if pattern in (WILDCARD, event_type):
        return True
    if WILDCARD not in pattern:
        return False
    wanted = pattern.split(".")
    actual = event_type.split(".")
    return len(wanted) == len(actual) and all(w in (WILDCARD, a) for w, a in zip(wanted, actual, strict=True))


def patterns_matching(name: str) -> list[str]:
    """The valid subscription entries that select ``name``, sorted: ``*``, ``name`` and its patterns.

    Each segment after the first may be ``*`` (``order.*``, ``order.*.added``); for a name of more
    than :data:`MAX_PATTERN_SEGMENTS` segments, only one segment at a time. An operational type:
    its name and :data:`OPERATIONAL_PATTERN`.
    """
    if name in OPERATIONAL_EVENT_TYPES:
        return sorted({name, OPERATIONAL_PATTERN})
    first, *rest = name.split(".")
    if len(rest) < MAX_PATTERN_SEGMENTS:
        choices = [(word, WILDCARD) for word in rest]
        patterns = {".".join((first, *chosen)) for chosen in product(*choices)}
    else:
        patterns = {".".join((first, *rest[:index], WILDCARD, *rest[index + 1 :])) for index in range(len(rest))}
    return sorted(patterns | {WILDCARD, name})


# --- JSON Schemas ------------------------------------------------------------------------------


def json_schema_problem(schema: Any) -> str | None:
    """Why ``schema`` is not a valid JSON Schema, or None when it is.

    The system checks (E010), the event type admin form and ``send_event()`` give this message.
    """
    if not isinstance(schema, dict | bool):
        return "Not a valid JSON Schema: a schema is an object, such as {'type': 'object', 'required': ['id']}."
    try:
        validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        return f"Not a valid JSON Schema: {exc.message}"
    except Exception as exc:  # e.g. an unhashable or unknown "$schema"
        return f"Not a valid JSON Schema: {exc}"
    return None


#: id(schema) -> (the schema, its validator): catalog entries keep their schema objects.
_validators: dict[int, tuple[Any, Any]] = {}


def schema_validator(schema: Any) -> Any:
    """A jsonschema validator for ``schema`` (cached); raises ``WebhooksConfigurationError`` when invalid."""
    cached = _validators.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    problem = json_schema_problem(schema)
    if problem:
        raise WebhooksConfigurationError(problem)
    validator = validator_for(schema)(schema)
    _validators[id(schema)] = (schema, validator)
    return validator


def schema_errors(schema: Any, data: Any) -> list[str]:
    """Messages (``$.path: message``) for every way ``data`` breaks ``schema``; empty when valid or without one."""
    if not schema:
        return []
    errors = sorted(schema_validator(schema).iter_errors(data), key=lambda error: list(error.absolute_path))
    return [f"{error.json_path}: {error.message}" for error in errors]


# --- catalog entries ---------------------------------------------------------------------------

#: Seconds other processes may keep using a cached copy of the ``EventType`` table.
CATALOG_TTL = 10.0

_catalog: dict[str, Any] = {"rows": None, "loaded_at": 0.0, "dirty_in": None}


@functools.cache
def _event_type_model() -> Any:
    return apps.get_model("django_webhooks", "EventType")


def _load_rows() -> dict[str, dict[str, Any]]:
    rows = _event_type_model().objects.values_list("name", "description", "schema", "thin", "archived")
    return {
        name: {"description": description, "schema": schema, "thin": thin, "archived": archived}
        for name, description, schema, thin, archived in rows
    }


def _catalog_rows() -> dict[str, dict[str, Any]]:
    connection = connections[router.db_for_read(_event_type_model())]
    if _catalog["dirty_in"] is not None and _catalog["dirty_in"] is connection.run_on_commit:
        # This transaction changed the catalog: read it fresh and cache nothing uncommitted.
        return _load_rows()
    rows = _catalog["rows"]
    if rows is None or time.monotonic() - _catalog["loaded_at"] > CATALOG_TTL:
        rows = _catalog["rows"] = _load_rows()
        _catalog["loaded_at"] = time.monotonic()
    return rows


def invalidate_catalog(**kwargs: Any) -> None:
    """Drop the cached catalog; connected to ``EventType`` saves and deletes."""
    _catalog["rows"] = None
    _catalog["dirty_in"] = None
    connection = connections[router.db_for_write(_event_type_model())]
    if connection.in_atomic_block:
        _catalog["dirty_in"] = connection.run_on_commit
        transaction.on_commit(invalidate_catalog, using=connection.alias)


post_save.connect(invalidate_catalog, sender="django_webhooks.EventType", dispatch_uid="django_webhooks.catalog.save")
post_delete.connect(
    invalidate_catalog, sender="django_webhooks.EventType", dispatch_uid="django_webhooks.catalog.delete"
)


def _merge(declared: dict[str, Any] | None, row: dict[str, Any] | None) -> dict[str, Any]:
    """One entry from its ``EVENT_TYPES`` declaration and its ``EventType`` row: the row wins, and a
    type is thin when either says so."""
    declared = declared or {}
    row = row or {}
    entry = {
        "description": row.get("description") or declared.get("description", ""),
        "schema": row["schema"] if row.get("schema") is not None else declared.get("schema"),
        "example": declared.get("example"),
        "thin": bool(row.get("thin") or declared.get("thin")),
        "archived": bool(row.get("archived")),
    }
    return {**entry, **_versions_of(declared, entry)}


def known_event_types(*, rows: bool = True) -> dict[str, dict[str, Any]]:
    """Every event type: ``EVENT_TYPES`` merged with ``EventType`` rows (a row wins), sorted by name.

    Values are dicts with ``description``, ``schema``, ``example``, ``thin``, ``archived``,
    ``version`` (the current one) and ``versions`` (every version served, oldest first, each
    ``{"version", "description", "schema", "example"}``; the last is the current one). With
    ``rows=False`` the table is not read: settings and built-ins only (where there is no database).
    """
    declared = webhooks_settings.EVENT_TYPES
    table = _catalog_rows() if rows else {}
    merged = {name: _merge(declared.get(name), table.get(name)) for name in set(declared) | set(table)}
    merged.update((name, _builtin_spec(name)) for name in BUILTIN_EVENT_TYPES)
    return dict(sorted(merged.items()))


def published_event_types(*, rows: bool = True) -> dict[str, dict[str, Any]]:
    """The entries customers may subscribe to (every one but the archived), by name: what the
    event-types endpoint, the portal's catalog, the OpenAPI ``webhooks`` and the admin form list."""
    return {name: spec for name, spec in known_event_types(rows=rows).items() if not spec["archived"]}


def _builtin_spec(name: str) -> dict[str, Any]:
    entry = {**BUILTIN_EVENT_TYPES[name], "thin": False, "archived": False}
    return {**entry, **_versions_of({}, entry)}


#: event type -> (the EVENT_TYPES dict and table rows it was merged from, the merged entry):
#: the capture path looks its type up once per event.
_specs: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}


def event_type_spec(event_type: str) -> dict[str, Any]:
    """The catalog entry for ``event_type``; raises :class:`UnknownEventType` if absent or archived."""
    if event_type in BUILTIN_EVENT_TYPES:
        return _builtin_spec(event_type)
    types = webhooks_settings.EVENT_TYPES
    rows = _catalog_rows()
    cached = _specs.get(event_type)
    if cached is not None and cached[0] is types and cached[1] is rows and not cached[2]["archived"]:
        return cached[2]
    declared = types.get(event_type)
    row = rows.get(event_type)
    if row is None and declared is None and rows is _catalog["rows"]:
        # Perhaps created in another process since we cached the table.
        _catalog["rows"] = None
        row = _catalog_rows().get(event_type)
    if row is None and declared is None:
        raise UnknownEventType(
            f"Unknown event type {event_type!r}: declare it in DJANGO_WEBHOOKS['EVENT_TYPES'] "
            f"or add it to the event catalog (EventType)."
        )
    spec = _merge(declared, row)
    if rows is _catalog["rows"]:
        _specs[event_type] = (types, rows, spec)
    if spec["archived"]:
        raise UnknownEventType(f"Event type {event_type!r} is archived; new events of this type are refused.")
    return spec


def thin_types(event_types: Iterable[str]) -> set[str]:
    """Those of ``event_types`` whose events are sent thin (``{"id", "type", "url"}``), read fresh
    from the table (one query): declared thin in ``EVENT_TYPES`` or by their ``EventType`` row."""
    names = set(event_types)
    declared = webhooks_settings.EVENT_TYPES
    thin = {name for name in names if (declared.get(name) or {}).get("thin")}
    thin.update(_event_type_model().objects.filter(name__in=names, thin=True).values_list("name", flat=True))
    return thin - BUILTIN_EVENT_TYPES.keys()


# --- what customers may choose -----------------------------------------------------------------


def _name_error(name: str, catalog: dict[str, dict[str, Any]], already: set[str]) -> ValidationError | None:
    params = {"name": name}
    if name not in catalog:
        return ValidationError(
            _("Unknown event type: %(name)s is not in the event catalog."), code="unknown_event_type", params=params
        )
    if catalog[name]["archived"] and name not in already:
        return ValidationError(
            _("%(name)s is archived: it takes no new subscriptions or events."),
            code="archived_event_type",
            params=params,
        )
    return None


def validate_active_event_type(name: str) -> dict[str, Any]:
    """The catalog entry of ``name``, which must be a known, not archived type (the API's test
    event); raises ``ValidationError`` otherwise."""
    catalog = known_event_types()
    error = _name_error(name, catalog, set())
    if error is not None:
        raise error
    return catalog[name]


def validate_subscribed_event_types(entries: Iterable[str], *, already: Iterable[str] = ()) -> None:
    """Refuse subscription entries that are not well-formed catalog names or patterns.

    A name must be in the catalog and not archived, unless it is in ``already`` (the entries
    the subscription had before: archiving a type keeps existing subscribers); a pattern
    (``order.*``, ``*``) must match some active type. The admin form and the API use it.
    Raises :class:`~django.core.exceptions.ValidationError` with one message per bad entry.
    """
    catalog = known_event_types()
    active = [name for name, spec in catalog.items() if not spec["archived"]]
    kept = set(already)
    errors: list[ValidationError] = []
    for entry in entries:
        try:
            validate_event_type_pattern(entry)
        except ValidationError as exc:
            errors.extend(exc.error_list)
            continue
        if is_pattern(entry):
            if not any(type_matches(entry, name) for name in active):
                errors.append(
                    ValidationError(
                        _("%(name)s matches no event type in the catalog."),
                        code="unmatched_pattern",
                        params={"name": entry},
                    )
                )
            continue
        error = _name_error(entry, catalog, kept)
        if error is not None:
            errors.append(error)
    if errors:
        raise ValidationError(errors)


# --- versions ----------------------------------------------------------------------------------


def is_version(value: Any) -> bool:
    """Whether ``value`` is a version number: a positive integer (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= FIRST_VERSION


def version_problems(name: str, declared: Mapping[str, Any]) -> list[str]:
    """Why the versions of ``EVENT_TYPES[name]`` cannot be served (check E021); empty when they can.

    ``version`` is the current version (default 1); ``versions`` maps each older version still
    served to ``{"schema", "example", "description", "converter"}``, its converter rendering the
    data of the version above it as its own. Every version from the oldest declared up to the
    current one must be there: the chain of converters is the only way down.
    """
    where = f"{SETTING_NAME}['EVENT_TYPES'][{name!r}]"
    current = declared.get("version", FIRST_VERSION)
    if not is_version(current):
        return [f"{where}['version'] must be a positive integer (the current version), not {current!r}."]
    older = declared.get("versions", {})
    if not isinstance(older, dict):
        return [f"{where}['versions'] must be a dict of older version numbers to their entries."]
    problems: list[str] = []
    valid: list[int] = []
    for number, entry in older.items():
        if not is_version(number) or number >= current:
            problems.append(
                f"{where}['versions'] key {number!r}: an older version is an integer from 1 to {current - 1} "
                f"(the current version, {current}, is the entry itself)."
            )
            continue
        if not isinstance(entry, dict):
            problems.append(f"{where}['versions'][{number}] must be a dict with 'converter', 'schema', 'example'.")
            continue
        unknown = sorted(map(str, set(entry) - set(OLDER_VERSION_KEYS)))
        if unknown:
            problems.append(f"{where}['versions'][{number}] has unknown key(s): {', '.join(unknown)}.")
        schema = entry.get("schema")
        problem = json_schema_problem(schema) if schema is not None else None
        if problem:
            problems.append(f"{where}['versions'][{number}]['schema']: {problem}")
        if entry.get("converter") is None:
            problems.append(
                f"{where}['versions'][{number}] has no converter: version {number} cannot be rendered from "
                f"version {number + 1}."
            )
        valid.append(number)
    if valid:
        missing = [number for number in range(min(valid) + 1, current) if number not in older]
        if missing:
            problems.append(
                f"{where}: no converter path from version {current} down to version {min(valid)}: "
                f"version(s) {', '.join(map(str, missing))} are not declared in 'versions'."
            )
    return problems


def _older_versions(declared: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The well-formed entries of ``versions``, oldest first (the others are E021's)."""
    current = declared.get("version", FIRST_VERSION)
    older = declared.get("versions")
    if not is_version(current) or not isinstance(older, dict):
        return {}
    valid = {
        number: entry
        for number, entry in older.items()
        if is_version(number) and number < current and isinstance(entry, dict)
    }
    return dict(sorted(valid.items()))


def converter_problems(name: str, declared: Mapping[str, Any]) -> list[str]:
    """Converters of ``EVENT_TYPES[name]['versions']`` that do not import or are not callable (check E022)."""
    problems = []
    for number, entry in _older_versions(declared).items():
        value = entry.get("converter")
        if value is None:
            continue  # E021
        try:
            _converter(value, f"{SETTING_NAME}['EVENT_TYPES'][{name!r}]['versions'][{number}]['converter'] =")
        except WebhooksConfigurationError as exc:
            problems.append(str(exc))
    return problems


def _converter(value: Any, where: str) -> Callable[[Any], Any]:
    converter = import_dotted(value, where) if isinstance(value, str) else value
    if not callable(converter):
        raise WebhooksConfigurationError(f"{where} {value!r} is not callable.")
    return converter


def _versions_of(declared: Mapping[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    """The ``version`` and ``versions`` of a catalog entry (what the API, admin and pins show)."""
    current = declared.get("version", FIRST_VERSION)
    if not is_version(current):
        current = FIRST_VERSION  # E021
    versions = [
        {
            "version": number,
            "description": older.get("description", ""),
            "schema": older.get("schema"),
            "example": older.get("example"),
        }
        for number, older in sorted(_older_versions(declared).items())
    ]
    versions.append({"version": current, "description": "", "schema": entry["schema"], "example": entry["example"]})
    return {"version": current, "versions": versions}


def convert(event_type: str, data: Any, from_version: int, to_version: int) -> Any:
    """``data`` of version ``from_version`` of ``event_type`` rendered as version ``to_version``.

    Each older version's converter takes the data of the version above it, from
    ``from_version - 1`` down to ``to_version``; it gets a copy, so it may change what it gets.
    Raises :class:`EventVersionError` when there is no such path (a newer version asked for, a
    version no longer declared) or a converter fails.
    """
    if to_version == from_version:
        return data
    if to_version > from_version:
        raise EventVersionError(
            f"{event_type} version {to_version} asked for, but the event was recorded in version {from_version}; "
            f"converters only render older versions."
        )
    older = _older_versions(webhooks_settings.EVENT_TYPES.get(event_type) or {})
    data = copy.deepcopy(data)
    for number in range(from_version - 1, to_version - 1, -1):
        where = f"{SETTING_NAME}['EVENT_TYPES'][{event_type!r}]['versions'][{number}]['converter'] ="
        entry = older.get(number)
        if entry is None or entry.get("converter") is None:
            raise EventVersionError(f"No converter renders {event_type} version {number + 1} as version {number}.")
        try:
            data = _converter(entry["converter"], where)(data)
        except WebhooksConfigurationError as exc:
            raise EventVersionError(str(exc)) from exc
        except Exception as exc:
            raise EventVersionError(
                f"The converter to {event_type} version {number} failed: {type(exc).__name__}: {exc}"
            ) from exc
    return data


def example_conversion_problems(name: str, declared: Mapping[str, Any]) -> list[str]:
    """What goes wrong rendering the current example of ``EVENT_TYPES[name]`` down its versions
    (check W014): a converter that raises, or data that breaks that version's schema."""
    older = _older_versions(declared)
    example = declared.get("example")
    current = declared.get("version", FIRST_VERSION)
    if not older or example is None or version_problems(name, declared) or converter_problems(name, declared):
        return []
    problems = []
    data = example
    for number in range(current - 1, min(older) - 1, -1):
        try:
            data = _converter(older[number]["converter"], "")(copy.deepcopy(data))
        except Exception as exc:
            problems.append(f"converting the example to version {number} raised {type(exc).__name__}: {exc}")
            break
        errors = schema_errors(older[number].get("schema"), data)
        if errors:
            problems.append(f"the example rendered as version {number} does not match its schema: {errors[0]}")
    return problems


def pin_event_versions(
    entries: Iterable[str], pins: Mapping[str, int] | None = None, *, previous: Iterable[str] = ()
) -> dict[str, int]:
    """A subscription's pins: ``pins``, plus the current version of each active type ``entries``
    select that ``previous`` (the entries before a change) did not and that has no pin yet.

    So a new subscription keeps receiving each type the way it is when it subscribed, whatever
    versions come later; a type added to the catalog afterwards has no pin and gets its current
    version. The admin form and the API call it when a subscription is created or its entries change.
    """
    entries, previous = list(entries), list(previous)
    pinned = dict(pins or {})
    for name, spec in known_event_types().items():
        if name in pinned or spec["archived"]:
            continue
        if any(type_matches(entry, name) for entry in entries) and not any(
            type_matches(entry, name) for entry in previous
        ):
            pinned[name] = spec["version"]
    return dict(sorted(pinned.items()))


def validate_event_versions(pins: Any) -> None:
    """Refuse pins (``{"order.created": 1}``) of unknown types or versions they do not serve.

    Raises :class:`~django.core.exceptions.ValidationError` with one message per bad pin; the
    admin form and the API use it.
    """
    if not isinstance(pins, dict):
        raise ValidationError(
            _('Event versions must be an object of event types to versions: {"order.created": 1}.'),
            code="invalid_event_versions",
        )
    catalog = known_event_types()
    errors: list[ValidationError] = []
    for name, version in pins.items():
        try:
            validate_event_type_name(name)
        except ValidationError as exc:
            errors.extend(exc.error_list)
            continue
        params = {"name": name, "version": version}
        spec = catalog.get(name)
        if spec is None:
            errors.append(
                ValidationError(
                    _("Unknown event type: %(name)s is not in the event catalog."),
                    code="unknown_event_type",
                    params=params,
                )
            )
            continue
        served = [entry["version"] for entry in spec["versions"]]
        if not is_version(version) or version not in served:
            errors.append(
                ValidationError(
                    _("%(name)s has no version %(version)r; its versions are %(served)s."),
                    code="unknown_event_version",
                    params={**params, "served": ", ".join(map(str, served))},
                )
            )
    if errors:
        raise ValidationError(errors)

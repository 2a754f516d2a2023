"""The event catalog as OpenAPI 3.1 ``webhooks``: what customers' endpoints will receive.

One ``webhooks`` entry per event type the API's catalog lists (``EVENT_TYPES`` merged with
``EventType`` rows, built-in ``webhook.endpoint.*`` types included, archived ones left out): a
``POST`` whose body is the Standard Webhooks envelope ``{"type", "timestamp", "data"}`` (and the
CloudEvents structured form, for subscriptions that choose it), ``data`` described by the type's
JSON Schema (:mod:`.embedded_schemas`), by a schema inferred from its example, or left free;
the ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers, with a signature that
really signs the example; and what each answer of the receiver makes of the delivery.

The catalog is settings plus database rows, so it is read when the document is generated:
:func:`add_catalog_webhooks` is a drf-spectacular postprocessing hook (``POSTPROCESSING_HOOKS``),
not a static ``WEBHOOKS`` list, and the ``webhooks_openapi`` command exports the same document.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, NamedTuple

from django.db import DatabaseError
from drf_spectacular.drainage import warn

from .. import catalog, signing
from ..conf import webhooks_settings
from ..delivery import formats
from ..delivery.transport import RETRYABLE_CLIENT_STATUSES
from ..models import Event, PayloadFormat
from .embedded_schemas import embedded_schema, schema_from_example

logger = logging.getLogger("django_webhooks.api.webhooks_schema")

#: The OpenAPI version that has ``webhooks``.
OAS_VERSION = "3.1.0"
#: The hook, as ``SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`` names it.
HOOK_PATH = "django_webhooks.api.webhooks_schema.add_catalog_webhooks"
#: Component names: event type names have no ``-``, drf-spectacular's serializer components neither.
ENVELOPE_COMPONENT = "webhook-{name}"
CLOUDEVENT_COMPONENT = "webhook-{name}-cloudevent"
DATA_COMPONENT = "webhook-{name}-data"
#: The signed example: a fixed time, message id and secret, so the document does not change from
#: one generation to the next and customers can check their verification code against it.
EXAMPLE_TIME = datetime(2025, 3, 1, 8, 0, tzinfo=UTC)
EXAMPLE_MESSAGE_ID = "msg_2Lq8Rk4vX0cQ5bTjLwz9pYfAnH"
EXAMPLE_SECRET = "whsec_ZGphbmdvLXdlYmhvb2tzIGV4YW1wbGUh"  # noqa: S105 (documented example, signs nothing real)
EXAMPLE_EVENT_ID = 1


class CatalogWebhooks(NamedTuple):
    """The ``webhooks`` of a document, the component schemas they refer to, and the catalog
    schemas that could not be shown as written (one message each)."""

    webhooks: dict[str, Any]
    schemas: dict[str, Any]
    problems: list[str]


def catalog_webhooks() -> CatalogWebhooks:
    """One ``webhooks`` entry per published event type, read from the catalog now."""
    webhooks: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    problems: list[str] = []
    try:
        published = catalog.published_event_types()
    except DatabaseError as exc:
        # No catalog table yet (``manage.py check``, which generates the schema, before
        # ``migrate``; a build step without a database): publish what the settings declare, and
        # log it rather than warn, so drf-spectacular's own check does not fail on it.
        logger.warning(
            "The EventType table could not be read (%s: %s); the OpenAPI webhooks list the "
            "EVENT_TYPES setting and the built-in types only.",
            type(exc).__name__,
            exc,
        )
        published = catalog.published_event_types(rows=False)
    for name, spec in published.items():
        data_schema, problem = _data_schema(name, spec)
        if problem:
            problems.append(f"Event type {name}: {problem}")
        schemas[DATA_COMPONENT.format(name=name)] = data_schema
        schemas[ENVELOPE_COMPONENT.format(name=name)] = _envelope_schema(name)
        schemas[CLOUDEVENT_COMPONENT.format(name=name)] = _cloudevent_schema(name)
        webhooks[name] = {"post": _operation(name, spec)}
    return CatalogWebhooks(webhooks, schemas, problems)


def add_catalog_webhooks(result: dict[str, Any], generator: Any = None, request: Any = None, **kwargs: Any) -> dict:
    """drf-spectacular postprocessing hook: the catalog's ``webhooks`` and their component schemas.

    ``webhooks`` is OpenAPI 3.1: with another ``OAS_VERSION`` the document is left as it is and
    drf-spectacular reports a warning (``spectacular --fail-on-warn`` fails on it). Webhooks
    declared in ``SPECTACULAR_SETTINGS["WEBHOOKS"]`` are kept; a catalog type of the same name wins.
    """
    if not str(result.get("openapi", "")).startswith("3.1"):
        warn(
            f"{HOOK_PATH} adds OpenAPI 3.1 webhooks, but SPECTACULAR_SETTINGS['OAS_VERSION'] is "
            f"{result.get('openapi')!r}: set it to {OAS_VERSION!r} to publish the event catalog."
        )
        return result
    found = catalog_webhooks()
    for problem in found.problems:
        warn(problem)
    result["webhooks"] = {**result.get("webhooks", {}), **found.webhooks}
    components = result.setdefault("components", {})
    components["schemas"] = {**components.get("schemas", {}), **found.schemas}
    return result


def webhooks_document(title: str = "Webhooks", version: str = "1") -> dict[str, Any]:
    """An OpenAPI 3.1 document of the event catalog alone (no API paths), for receivers' authors."""
    found = catalog_webhooks()
    for problem in found.problems:
        warn(problem)
    return {
        "openapi": OAS_VERSION,
        "info": {
            "title": title,
            "version": version,
            "description": "The webhooks sent to your endpoints, one entry per event type.",
        },
        "webhooks": found.webhooks,
        "components": {"schemas": found.schemas},
    }


# --- one event type ---------------------------------------------------------------------------------


def _ref(template: str, name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{template.format(name=name)}"}


def _data_schema(name: str, spec: dict[str, Any]) -> tuple[dict[str, Any] | bool, str]:
    """The schema of ``data``: thin reference, the catalog's schema, one inferred from the example, or free."""
    if spec["thin"]:
        return _thin_schema(name), ""
    if spec["schema"] is not None:
        embedded = embedded_schema(spec["schema"], "#/components/schemas/" + DATA_COMPONENT.format(name=name))
        return embedded.schema, embedded.problem
    if spec["example"] is not None:
        inferred = schema_from_example(spec["example"])
        return {**inferred, "description": "Inferred from the example: the catalog declares no schema."}, ""
    return {"description": "Any JSON value: the catalog declares neither a schema nor an example."}, ""


def _thin_schema(name: str) -> dict[str, Any]:
    """``data`` of a thin type, as :func:`~django_webhooks.delivery.formats.envelope_data` builds it."""
    return {
        "type": "object",
        "description": "A thin event: a reference to the object, to fetch at url for its current state.",
        "required": ["id", "type", "url"],
        "properties": {
            "id": {"description": "The object's id."},
            "type": {"const": name, "description": "The event type."},
            "url": {"type": ["string", "null"], "description": "Where to fetch the object (null when not configured)."},
        },
    }


def _envelope_schema(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"The Standard Webhooks envelope of a {name} event.",
        "required": ["type", "timestamp", "data"],
        "properties": {
            "type": {"const": name, "description": "The event type."},
            "timestamp": {
                "type": "string",
                "format": "date-time",
                "description": "When the event happened (RFC 3339, UTC); the same on every retry.",
            },
            "data": _ref(DATA_COMPONENT, name),
        },
    }


def _cloudevent_schema(name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "description": f"A {name} event as CloudEvents 1.0 structured JSON (payload_format cloudevents).",
        "required": ["specversion", "id", "source", "type", "time", "datacontenttype", "data"],
        "properties": {
            "specversion": {"const": formats.CLOUDEVENTS_SPEC_VERSION, "description": "The CloudEvents version."},
            "id": {"type": "string", "description": "The event's id: the same for every endpoint and retry."},
            "source": {"type": "string", "description": "Who sent it (CLOUDEVENTS_SOURCE)."},
            "type": {"const": name, "description": "The event type."},
            "time": {"type": "string", "format": "date-time", "description": "When the event happened (UTC)."},
            "datacontenttype": {"const": "application/json", "description": "The data is JSON."},
            "data": _ref(DATA_COMPONENT, name),
        },
    }


def _operation(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    example = _example_event(name, spec)
    standard = _rendered(example, PayloadFormat.STANDARD)
    cloudevent = _rendered(example, PayloadFormat.CLOUDEVENTS)
    standard_media: dict[str, Any] = {"schema": _ref(ENVELOPE_COMPONENT, name)}
    cloudevent_media: dict[str, Any] = {"schema": _ref(CLOUDEVENT_COMPONENT, name)}
    if standard is not None and cloudevent is not None:
        standard_media["example"] = json.loads(standard)
        cloudevent_media["example"] = json.loads(cloudevent)
    return {
        "operationId": f"webhook.{name}",
        "summary": name,
        "description": _description(spec),
        "tags": ["Webhooks: endpoint alerts" if catalog.is_operational(name) else "Webhooks"],
        "parameters": _headers(standard),
        "requestBody": {
            "required": True,
            "description": "What your endpoint receives. The body is compact JSON; verify the signature "
            "over its exact bytes before you parse it.",
            "content": {
                formats.CONTENT_TYPES[PayloadFormat.STANDARD]: standard_media,
                formats.CONTENT_TYPES[PayloadFormat.CLOUDEVENTS]: cloudevent_media,
            },
        },
        "responses": _responses(),
    }


def _description(spec: dict[str, Any]) -> str:
    parts = [spec["description"] or "No description in the catalog."]
    if len(spec["versions"]) > 1:
        older = ", ".join(str(entry["version"]) for entry in spec["versions"][:-1])
        parts.append(
            f"This is version {spec['version']}, the current one. A subscription may pin an older version "
            f"(event_versions): {older}; see GET event-types/{{name}}/ for their schemas."
        )
    parts.append(
        "Subscriptions with payload_format cloudevents receive the CloudEvents structured form "
        "(application/cloudevents+json); with cloudevents_binary, the data alone as the body "
        "(application/json) and the attributes as ce-* headers."
    )
    return "\n\n".join(parts)


def _example_event(name: str, spec: dict[str, Any]) -> Event | None:
    """An unsaved event of the type's example (a thin type always has one: the reference)."""
    if spec["example"] is None and not spec["thin"]:
        return None
    event = Event(id=EXAMPLE_EVENT_ID, event_type=name, payload=spec["example"], created_at=EXAMPLE_TIME)
    event.payload = formats.envelope_data(event, thin=spec["thin"])
    return event


def _rendered(event: Event | None, payload_format: str) -> str | None:
    """The body ``event`` is sent as in ``payload_format`` (the engine's own rendering), or None."""
    if event is None:
        return None
    try:
        return formats.render(event, payload_format, event.payload)
    except (TypeError, ValueError):
        return None


def _headers(body: str | None) -> list[dict[str, Any]]:
    """The Standard Webhooks headers; with an example body, values that really sign it."""
    signature: dict[str, Any] = {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "Space-separated v1,<base64> signatures: HMAC-SHA256 of "
        "'<webhook-id>.<webhook-timestamp>.<body>' with your secret (whsec_..., base64 after the "
        "prefix). During a secret rotation there is one per valid secret; accept the request when one matches.",
        "schema": {"type": "string"},
    }
    if body is not None:
        signature["description"] += f" The example signs the example body, sent as compact JSON, with {EXAMPLE_SECRET}."
        signature["example"] = signing.signature_header(EXAMPLE_SECRET, EXAMPLE_MESSAGE_ID, EXAMPLE_TIME, body.encode())
    return [
        {
            "name": "webhook-id",
            "in": "header",
            "required": True,
            "description": "The message id: the same on every retry, resend and recovery of this delivery. "
            "Process each id once.",
            "schema": {"type": "string"},
            "example": EXAMPLE_MESSAGE_ID,
        },
        {
            "name": "webhook-timestamp",
            "in": "header",
            "required": True,
            "description": "When this attempt was signed, in seconds since 1970 (UTC). Refuse a timestamp "
            "more than a few minutes away from your clock (a replayed request).",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
            "example": str(signing.timestamp_seconds(EXAMPLE_TIME)),
        },
        signature,
        {
            "name": "User-Agent",
            "in": "header",
            "required": False,
            "description": "The sender, e.g. django-webhooks/<version> (USER_AGENT).",
            "schema": {"type": "string"},
        },
    ]


def _responses() -> dict[str, Any]:
    """What the receiver's answer does with the delivery (``TransportResult``'s rule, default retry policy)."""
    retried = (
        "Retried on the retry schedule, as are timeouts, connection and TLS errors; a Retry-After header is honoured."
    )
    responses: dict[str, Any] = {
        "2XX": {
            "description": f"Delivered. Answer within {webhooks_settings.TIMEOUT:g} seconds: do slow work "
            "after answering."
        },
        "410": {
            "description": "Gone: the delivery fails and the subscription is disabled; nothing more is sent "
            "until it is enabled again."
        },
    }
    responses.update((str(status), {"description": retried}) for status in sorted(RETRYABLE_CLIENT_STATUSES))
    responses["5XX"] = {"description": retried}
    responses["default"] = {
        "description": "Any other answer (another 4xx, a redirect, which is never followed): the delivery "
        "fails and is not retried."
    }
    return responses

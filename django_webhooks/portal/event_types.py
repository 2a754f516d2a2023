"""The event catalog page: each type's description, its JSON Schema as a table, an example and a
sample request (headers and body) as a receiver gets it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from .. import catalog, signing
from ..delivery.fanout import build_body
from ..delivery.headers import request_headers
from ..models import Event, new_message_id
from .access import PortalAccess, portal_view

#: The example secret of the Standard Webhooks specification: the sample's signature is real, with it.
SAMPLE_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Nested properties shown at most this deep; the raw schema shows the rest.
MAX_SCHEMA_DEPTH = 6


@dataclass(frozen=True)
class SchemaRow:
    """One property of a JSON Schema, by its dotted path (``items[]`` for array items)."""

    path: str
    type: str
    required: bool
    description: str
    constraints: str


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind:
        return str(kind)
    for combinator in ("oneOf", "anyOf", "allOf"):
        if isinstance(schema.get(combinator), list):
            return combinator
    return "any"


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append(_("one of %(values)s") % {"values": ", ".join(json.dumps(v) for v in schema["enum"])})
    if "const" in schema:
        parts.append(_("always %(value)s") % {"value": json.dumps(schema["const"])})
    for key in ("format", "pattern", "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems"):
        if key in schema:
            parts.append(f"{key}: {schema[key]}")
    return "; ".join(parts)


def schema_rows(schema: Any, prefix: str = "", depth: int = 0) -> list[SchemaRow]:
    """The properties of ``schema`` (and of nested objects and array items), in order."""
    if not isinstance(schema, dict) or depth > MAX_SCHEMA_DEPTH:
        return []
    rows: list[SchemaRow] = []
    properties = schema.get("properties")
    required = set(schema.get("required") or ())
    if isinstance(properties, dict):
        for name, spec in properties.items():
            if not isinstance(spec, dict):
                continue
            path = f"{prefix}{name}"
            rows.append(
                SchemaRow(path, _type_of(spec), name in required, str(spec.get("description", "")), _constraints(spec))
            )
            rows += schema_rows(spec, f"{path}.", depth + 1)
    items = schema.get("items")
    if isinstance(items, dict) and (items.get("properties") or items.get("items")):
        rows += schema_rows(items, f"{prefix.rstrip('.')}[].", depth + 1)
    return rows


def sample_request(name: str, data: Any) -> dict[str, Any]:
    """What a receiver gets for an event of type ``name`` with ``data`` (Standard Webhooks envelope):
    the headers and the exact body, which the signature covers (pretty-printed, it would not verify)."""
    now = timezone.now()
    event = Event(event_type=name, payload=data, created_at=now)
    body = build_body(event, thin=False)
    signed = signing.webhook_headers(new_message_id(), now, body.encode(), [SAMPLE_SECRET])
    return {"headers": request_headers(None, signed), "body": body}


def catalog_entries() -> list[dict[str, Any]]:
    entries = []
    for name, spec in catalog.published_event_types().items():
        example = spec.get("example")
        entries.append(
            {
                "name": name,
                "anchor": "type-" + name.replace(".", "-").replace("*", "any"),
                "description": spec.get("description") or "",
                "thin": spec.get("thin"),
                "version": spec.get("version"),
                "older_versions": [entry["version"] for entry in spec.get("versions", [])][:-1],
                "schema_rows": schema_rows(spec.get("schema")),
                "schema": json.dumps(spec["schema"], indent=2) if spec.get("schema") is not None else None,
                "example": json.dumps(example, indent=2) if example is not None else None,
                "sample": sample_request(name, example if example is not None else {}),
                "operational": catalog.is_operational(name),
            }
        )
    return entries


@require_GET
@portal_view()
def event_catalog(request: HttpRequest, access: PortalAccess) -> HttpResponse:
    context = {
        "title": _("Event catalog"),
        "access": access,
        "entries": catalog_entries(),
        "sample_secret": SAMPLE_SECRET,
    }
    return render(request, "django_webhooks/portal/event_catalog.html", context)

"""Request bodies: JSON within the limits a public endpoint needs, refused with 400 or 413.

* Nesting: objects and arrays at most :data:`MAX_BODY_DEPTH` levels deep, the body itself
  plus :data:`~django_webhooks.capture.payloads.MAX_JSON_DEPTH` for the JSON values it carries
  (``filters``, a test event's ``data``). Deeper bodies are a 400, and so are bodies deep
  enough to exhaust Python's recursion limit while parsing.
* Size: at most Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (2.5 MB unless the host
  changes it); a larger body is a 413 with a JSON ``detail``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.utils.translation import gettext_lazy as _
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from ..capture.payloads import MAX_JSON_DEPTH

#: Deepest nesting of a request body: one level for the body's own object.
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 1


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"

    def __init__(self) -> None:
        super().__init__(
            _("The request body is larger than %(limit)s bytes.") % {"limit": settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
        )


def nesting_exceeds(value: Any, limit: int) -> bool:
    """True when ``value`` nests objects and arrays more than ``limit`` levels deep (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class WebhooksJSONParser(JSONParser):
    """DRF's strict JSON parser (no NaN or Infinity), with the nesting limit of this module."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
            too_deep = nesting_exceeds(data, MAX_BODY_DEPTH)
        except RecursionError:
            too_deep = True
        if too_deep:
            raise ParseError(
                _("JSON parse error - objects and arrays nest at most %(limit)d levels deep.")
                % {"limit": MAX_BODY_DEPTH}
            )
        return data

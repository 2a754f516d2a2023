"""OpenAPI details drf-spectacular cannot infer: the error responses every operation can give.

The event catalog published as the document's ``webhooks``: :mod:`.webhooks_schema`.
"""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

DETAIL_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "string", "description": "What went wrong."}},
    "required": ["detail"],
}
VALIDATION_ERROR = {
    "type": "object",
    "description": "Messages per field (a list of strings, or nested objects for nested fields); "
    "'non_field_errors' or 'detail' for the request as a whole.",
    "additionalProperties": {},
}

ERROR_RESPONSES: dict[str, tuple[dict, str]] = {
    "400": (
        VALIDATION_ERROR,
        "Invalid input: malformed JSON, a body nested too deep, wrong types or values refused, per field.",
    ),
    "401": (DETAIL_ERROR, "Not authenticated (with authentication that can challenge the client)."),
    "403": (DETAIL_ERROR, "Not authenticated, or the account is not linked to a webhook owner."),
    "404": (DETAIL_ERROR, "No such object among yours (other owners' ids are not found either), or a bad cursor."),
    "429": (DETAIL_ERROR, "Too many requests; retry after the Retry-After header's seconds."),
}
#: Responses of the operations that read a request body.
BODY_ERROR_RESPONSES: dict[str, tuple[dict, str]] = {
    "413": (DETAIL_ERROR, "The request body is larger than the server accepts."),
}


class WebhooksAutoSchema(AutoSchema):
    """Adds the API's error responses to every operation (and 413 to those that take a body), so
    clients and schema checkers know them, and types ``{id}`` as the integer it is (the URL pattern
    accepts any segment, so a malformed id gets the same JSON 404 as an unknown one)."""

    def get_override_parameters(self) -> list:
        parameters = list(super().get_override_parameters())
        if "{id}" in self.path:
            meta = getattr(getattr(self.view, "serializer_class", None), "Meta", None)
            name = meta.model._meta.verbose_name if meta is not None else "object"
            parameters.append(
                OpenApiParameter(
                    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description=f"The {name}'s id (one of yours)."
                )
            )
        return parameters

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> Any:
        """A nullable free-form field (``JSONField(allow_null=True)``): drf-spectacular writes it for
        OpenAPI 3.1 as ``oneOf: [{}, {"type": "null"}]``, which refuses null (it matches both); any
        value, null included, is ``{}``."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if isinstance(schema, dict) and schema.get("oneOf") == [{}, {"type": "null"}]:
            schema = {key: value for key, value in schema.items() if key != "oneOf"}
        return schema

    def _get_response_bodies(self, direction: Literal["request", "response"] = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(ERROR_RESPONSES)
        if self.method in ("POST", "PUT", "PATCH"):
            errors.update(BODY_ERROR_RESPONSES)
        for code, (schema, description) in errors.items():
            responses.setdefault(
                code, {"content": {"application/json": {"schema": schema}}, "description": description}
            )
        return responses

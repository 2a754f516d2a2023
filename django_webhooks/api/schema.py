"""OpenAPI details drf-spectacular cannot infer: the error responses every operation can give."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

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
    "400": (VALIDATION_ERROR, "Invalid input: malformed JSON, wrong types or values refused, per field."),
    "401": (DETAIL_ERROR, "Not authenticated (with authentication that can challenge the client)."),
    "403": (DETAIL_ERROR, "Not authenticated, or the account is not linked to a webhook owner."),
    "404": (DETAIL_ERROR, "No such object among yours (other owners' ids are not found either), or a bad cursor."),
    "429": (DETAIL_ERROR, "Too many requests; retry after the Retry-After header's seconds."),
}


class WebhooksAutoSchema(AutoSchema):
    """Adds the API's error responses to every operation, so clients and schema checkers know them."""

    def _get_response_bodies(self, direction: str = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        for code, (schema, description) in ERROR_RESPONSES.items():
            responses.setdefault(
                code, {"content": {"application/json": {"schema": schema}}, "description": description}
            )
        return responses

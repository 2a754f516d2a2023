"""Cursor pagination: stable pages over logs that grow while customers read them."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class WebhooksCursorPagination(CursorPagination):
    """Newest first; follow ``next`` / ``previous`` links, never build cursors by hand."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        properties = paginated["properties"]
        properties["next"]["description"] = "URL of the next (older) page; null on the last page."
        properties["previous"]["description"] = "URL of the previous (newer) page; null on the first page."
        properties["results"]["description"] = "This page's objects, newest first."
        return paginated

"""Cursor pagination: stable pages over logs that grow while customers read them."""

from __future__ import annotations

from rest_framework.pagination import CursorPagination


class WebhooksCursorPagination(CursorPagination):
    """Newest first; follow ``next`` / ``previous`` links, never build cursors by hand."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")

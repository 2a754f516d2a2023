"""Cursor pagination: stable pages over logs that grow while customers read them."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connections
from django.db.models import QuerySet
from django.utils import timezone
from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request
from rest_framework.views import APIView


class WebhooksCursorPagination(CursorPagination):
    """Newest first; follow ``next`` / ``previous`` links, never build cursors by hand.

    A cursor that does not decode, or whose position is not a value of the ordering field
    (a crafted ``p=`` that is not a time, or a time the database cannot hold), is a 404
    "Invalid cursor", as DRF documents for cursors it cannot decode.
    """

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = ("-created_at", "-id")

    queryset: QuerySet

    def paginate_queryset(self, queryset: QuerySet, request: Request, view: APIView | None = None) -> list | None:
        self.queryset = queryset
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is not None and cursor.position is not None and not self.is_valid_position(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def is_valid_position(self, position: Any) -> bool:
        """True when ``position`` converts to a value of the ordering field the database accepts."""
        field = self.queryset.model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            value = field.to_python(position)
            if isinstance(value, datetime.datetime):
                # Positions are written from aware datetimes when USE_TZ is on; and converting
                # to UTC is where year 1 at +14:00 overflows.
                if settings.USE_TZ and timezone.is_naive(value):
                    return False
                if timezone.is_aware(value):
                    value.astimezone(datetime.UTC)
            field.get_db_prep_value(value, connection=connections[self.queryset.db], prepared=False)
        except (ValidationError, ValueError, TypeError, OverflowError):
            return False
        return True

    def get_paginated_response_schema(self, schema: dict) -> dict:
        paginated = super().get_paginated_response_schema(schema)
        properties = paginated["properties"]
        properties["next"]["description"] = "URL of the next (older) page; null on the last page."
        properties["previous"]["description"] = "URL of the previous (newer) page; null on the first page."
        properties["results"]["description"] = "This page's objects, newest first."
        return paginated

"""Query-string filters of the event and delivery lists, validated like request bodies.

A bad value (an unknown status, a date that is not ISO 8601, a range that ends before it
starts) is a 400 with a message per parameter, never an empty page or a 500.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.request import Request

from ..models import DeliveryStatus
from .serializers import WebhooksSerializer, event_type_name_field


class CreatedRangeFilter(WebhooksSerializer):
    created_after = serializers.DateTimeField(
        required=False, help_text=_("Only objects created at or after this time (ISO 8601).")
    )
    created_before = serializers.DateTimeField(
        required=False, help_text=_("Only objects created before this time (ISO 8601).")
    )
    event_type = event_type_name_field(_("Only this event type (exact name, e.g. order.created)."))

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        after, before = attrs.get("created_after"), attrs.get("created_before")
        if after and before and before <= after:
            raise serializers.ValidationError({"created_before": _("Must be later than created_after.")})
        return attrs


class EventFilter(CreatedRangeFilter):
    """Filters of ``GET /events/``."""


class DeliveryFilter(CreatedRangeFilter):
    """Filters of ``GET /deliveries/``."""

    status = serializers.ChoiceField(
        choices=DeliveryStatus.choices, required=False, help_text=_("Only deliveries in this status.")
    )
    subscription = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, required=False, help_text=_("Only deliveries to this subscription (its id).")
    )


def filter_queryset(
    queryset: QuerySet, request: Request, filter_class: type[CreatedRangeFilter], *, event_type_field: str
) -> QuerySet:
    """Apply ``filter_class``'s validated query parameters; raise a 400 for bad ones."""
    params = filter_class(data=request.query_params)
    params.is_valid(raise_exception=True)
    values = params.validated_data
    if "created_after" in values:
        queryset = queryset.filter(created_at__gte=values["created_after"])
    if "created_before" in values:
        queryset = queryset.filter(created_at__lt=values["created_before"])
    if "event_type" in values:
        queryset = queryset.filter(**{event_type_field: values["event_type"]})
    if "status" in values:
        queryset = queryset.filter(status=values["status"])
    if "subscription" in values:
        queryset = queryset.filter(subscription_id=values["subscription"])
    return queryset

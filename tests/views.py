"""Async views of the suite, recording events the way a project's async views would."""

from __future__ import annotations

import json
from decimal import Decimal

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from django_webhooks import asend_event
from django_webhooks.exceptions import WebhooksError

from .models import Customer, Order


@csrf_exempt
async def record_event(request: HttpRequest) -> JsonResponse:
    """``POST {"type": ..., "data": ...}``: one event through ``asend_event``; 400 with the error."""
    body = json.loads(request.body, parse_constant=float)  # lets "NaN" through, to be refused
    try:
        event = await asend_event(body["type"], body["data"], idempotency_key=body.get("key"))
    except WebhooksError as exc:
        return JsonResponse({"error": type(exc).__name__, "detail": str(exc)}, status=400)
    return JsonResponse({"event_id": event.pk})


@csrf_exempt
async def create_order(request: HttpRequest) -> JsonResponse:
    """``POST {"customer": id, "number": ...}``: a bound model saved with ``acreate``."""
    body = json.loads(request.body)
    customer = await Customer.objects.aget(pk=body["customer"])
    order = await Order.objects.acreate(customer=customer, number=body["number"], total=Decimal("9.50"))
    return JsonResponse({"order_id": order.pk})

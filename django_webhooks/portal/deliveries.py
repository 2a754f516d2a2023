"""The delivery log: filters by status, type, endpoint and date, search by message id or event id,
and each delivery with its attempts. The search is the admin's (:mod:`django_webhooks.log_search`),
so every term is answered through an index."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from ..log_search import DELIVERY_PATHS, InvalidSearch, apply_log_search, parse_log_search
from ..models import Delivery, DeliveryAttempt, Subscription
from .access import PortalAccess, portal_view
from .forms import DeliveryFilterForm

PAGE_SIZE = 50


def owned_deliveries(access: PortalAccess) -> QuerySet[Delivery]:
    return Delivery.objects.filter(subscription__owner_id=access.owner_id)


def owned_delivery(access: PortalAccess, pk: int) -> Delivery:
    """The owner's delivery ``pk``; another owner's (or none) is a 404."""
    return get_object_or_404(owned_deliveries(access).select_related("event", "subscription"), pk=pk)


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filtered(access: PortalAccess, form: DeliveryFilterForm) -> tuple[QuerySet[Delivery], str | None]:
    """The owner's deliveries the filters select, and the search's error if it cannot be read."""
    queryset = owned_deliveries(access)
    if not form.is_valid():
        return queryset.none(), _("Some filters are not valid.")
    data = form.cleaned_data
    if data["status"]:
        queryset = queryset.filter(status=data["status"])
    if data["event_type"]:
        queryset = queryset.filter(event__event_type=data["event_type"])
    if data["endpoint"] is not None:
        queryset = queryset.filter(subscription_id=data["endpoint"])
    if data["since"]:
        queryset = queryset.filter(created_at__gte=_day_start(data["since"]))
    if data["until"]:
        queryset = queryset.filter(created_at__lt=_day_start(data["until"]) + timedelta(days=1))
    if data["q"].strip():
        try:
            search = parse_log_search(data["q"])
        except InvalidSearch as exc:
            return queryset.none(), str(exc)
        queryset = apply_log_search(queryset, search, DELIVERY_PATHS).queryset
    return queryset, None


@require_GET
@portal_view()
def delivery_log(request: HttpRequest, access: PortalAccess) -> HttpResponse:
    """Newest first, :data:`PAGE_SIZE` at a time (``?before=<id>`` for older ones: no count of the whole log)."""
    endpoints = list(Subscription.objects.filter(owner_id=access.owner_id).order_by("description", "url"))
    form = DeliveryFilterForm(request.GET, endpoints=endpoints)
    queryset, problem = filtered(access, form)
    before = request.GET.get("before", "")
    if before.isdigit():
        queryset = queryset.filter(pk__lt=int(before))
    page = list(queryset.select_related("event", "subscription").order_by("-pk")[: PAGE_SIZE + 1])
    older = len(page) > PAGE_SIZE
    query = request.GET.copy()
    query.pop("before", None)
    if older:
        query["before"] = str(page[PAGE_SIZE - 1].pk)
    context = {
        "title": _("Delivery log"),
        "access": access,
        "form": form,
        "problem": problem,
        "deliveries": page[:PAGE_SIZE],
        "older_query": query.urlencode() if older else None,
    }
    template = (
        "django_webhooks/portal/delivery_log_results.html"
        if request.headers.get("HX-Request") and request.headers.get("HX-Target") == "delivery-log"
        else "django_webhooks/portal/delivery_log.html"
    )
    return render(request, template, context)


@require_GET
@portal_view()
def delivery_detail(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    delivery = get_object_or_404(
        owned_deliveries(access)
        .select_related("event", "subscription")
        .prefetch_related(
            Prefetch("delivery_attempts", queryset=DeliveryAttempt.objects.order_by("attempt_number", "id"))
        ),
        pk=pk,
    )
    context = {
        "title": delivery.message_id,
        "access": access,
        "delivery": delivery,
        "attempts": list(delivery.delivery_attempts.all()),
        "body": delivery.body or delivery.event.body,
    }
    return render(request, "django_webhooks/portal/delivery_detail.html", context)

"""Endpoint pages: the list with health, one endpoint with its charts, create, edit, enable, disable, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..delivery import health, operations
from ..models import AttemptStats, AuditAction, Delivery, Subscription
from ..stats import LAST_24_HOURS, ChartWindow, window_charts
from . import audit
from .access import PortalAccess, portal_view
from .forms import DisableForm, RecoverForm, SubscriptionForm, TestEventForm, form_errors

#: Fields whose changes the audit log records.
AUDITED_FIELDS = ("url", "description", "event_types", "payload_format", "headers", "filters", "event_versions")
RECENT_DELIVERIES = 10


def owned_subscription(access: PortalAccess, pk: int) -> Subscription:
    """The owner's subscription ``pk``; another owner's (or none) is a 404."""
    return get_object_or_404(Subscription, pk=pk, owner_id=access.owner_id)


def audited_values(subscription: Subscription) -> dict[str, Any]:
    return {name: getattr(subscription, name) for name in AUDITED_FIELDS}


@require_GET
@portal_view()
def endpoint_list(request: HttpRequest, access: PortalAccess) -> HttpResponse:
    subscriptions = list(Subscription.objects.filter(owner_id=access.owner_id).order_by("-created_at", "-id"))
    figures = health.health_for(subscriptions)
    rows = [{"subscription": s, "health": figures.get(s.pk) or health.subscription_health(s)} for s in subscriptions]
    return render(
        request,
        "django_webhooks/portal/endpoint_list.html",
        {"title": _("Webhook endpoints"), "rows": rows, "access": access},
    )


#: The endpoint page's windows: the last 24 hours by hour, the last 30 days by day.
CHART_WINDOWS = (LAST_24_HOURS, ChartWindow("30d", gettext_lazy("last 30 days"), 30, "day"))


def charts(subscription: Subscription, now: datetime | None = None) -> list[dict[str, Any]]:
    """The endpoint's attempts per hour over the last day and per day over the last 30 days."""
    return window_charts(
        AttemptStats.objects.filter(subscription=subscription),
        now or timezone.now(),
        outcomes_title=_("Delivery attempts, %(window)s"),
        latency_title=_("Response time percentiles, %(window)s"),
        windows=CHART_WINDOWS,
    )


@require_GET
@portal_view()
def endpoint_detail(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    recent = (
        Delivery.objects.filter(subscription=subscription).select_related("event").order_by("-id")[:RECENT_DELIVERIES]
    )
    context = {
        "title": subscription.description or subscription.url,
        "access": access,
        "subscription": subscription,
        "health": health.subscription_health(subscription),
        "charts": charts(subscription),
        "recent": list(recent),
        "test_form": TestEventForm(),
        "recover_form": RecoverForm(),
        "disable_form": DisableForm(),
    }
    return render(request, "django_webhooks/portal/endpoint_detail.html", context)


def endpoint_form(
    request: HttpRequest,
    access: PortalAccess,
    subscription: Subscription | None,
    *,
    action: AuditAction,
    title: str,
    saved_message: str,
) -> HttpResponse:
    """Show the endpoint form (a new endpoint when ``subscription`` is None) and, once it validates,
    save it and audit ``action``: every audited value of a new endpoint, what changed of an existing one."""
    form = SubscriptionForm(request.POST or None, instance=subscription)
    if request.method == "POST" and form.is_valid():
        before = audited_values(subscription) if subscription is not None else None
        with transaction.atomic():
            saved = form.save(access.owner_id)
            after = audited_values(saved)
            changes = after if before is None else audit.field_changes(before, after)
            if changes:
                audit.record(access, action, saved, changes=changes)
        messages.success(request, saved_message)
        return redirect("django_webhooks_portal:endpoint", pk=saved.pk)
    return render(
        request,
        "django_webhooks/portal/endpoint_form.html",
        {"title": title, "form": form, "access": access, "subscription": subscription},
        status=400 if form.is_bound else 200,
    )


@require_http_methods(["GET", "POST"])
@portal_view()
def endpoint_create(request: HttpRequest, access: PortalAccess) -> HttpResponse:
    return endpoint_form(
        request,
        access,
        None,
        action=AuditAction.SUBSCRIPTION_CREATED,
        title=_("New endpoint"),
        saved_message=_("Endpoint created. Its signing secret is on its secret page."),
    )


@require_http_methods(["GET", "POST"])
@portal_view()
def endpoint_edit(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    return endpoint_form(
        request,
        access,
        owned_subscription(access, pk),
        action=AuditAction.SUBSCRIPTION_UPDATED,
        title=_("Edit endpoint"),
        saved_message=_("Endpoint saved."),
    )


@require_http_methods(["GET", "POST"])
@portal_view()
def endpoint_delete(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    if request.method == "POST":
        with transaction.atomic():
            audit.record(access, AuditAction.SUBSCRIPTION_DELETED, subscription, changes=audited_values(subscription))
            subscription.delete()
        messages.success(request, _("Endpoint deleted, with its delivery log."))
        return redirect("django_webhooks_portal:endpoints")
    deliveries = Delivery.objects.filter(subscription=subscription).count()
    return render(
        request,
        "django_webhooks/portal/endpoint_delete.html",
        {"title": _("Delete endpoint"), "subscription": subscription, "deliveries": deliveries, "access": access},
    )


@require_POST
@portal_view()
def endpoint_enable(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    with transaction.atomic():
        if not subscription.enabled:
            audit.record(access, AuditAction.SUBSCRIPTION_ENABLED, subscription)
        operations.enable(subscription)
    messages.success(request, _("Endpoint enabled. Deliveries that waited go out now."))
    return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)


@require_POST
@portal_view()
def endpoint_disable(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    form = DisableForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)
    reason = form.validated_data.get("reason") or _("Disabled in the webhooks portal.")
    with transaction.atomic():
        if subscription.enabled:
            audit.record(access, AuditAction.SUBSCRIPTION_DISABLED, subscription, changes={"reason": reason})
        operations.disable(subscription, reason)
    messages.success(request, _("Endpoint disabled. Its deliveries wait until you enable it again."))
    return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)

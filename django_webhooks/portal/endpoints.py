"""Endpoint pages: the list with health, one endpoint with its charts, create, edit, enable, disable, delete."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..delivery import health, operations
from ..models import AttemptStats, AuditAction, Delivery, Subscription
from ..stats import latency_chart_svg, outcome_buckets, outcomes_chart_svg, window_summary
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


def charts(subscription: Subscription, now: Any = None) -> list[dict[str, Any]]:
    """The endpoint's attempts per hour over the last day and per day over the last 30 days."""
    now = now or timezone.now()
    stats = AttemptStats.objects.filter(subscription=subscription)
    windows = []
    for key, label, since, bucket in (
        ("24h", _("last 24 hours"), now - timedelta(hours=23), "hour"),
        ("30d", _("last 30 days"), now - timedelta(days=29), "day"),
    ):
        buckets = outcome_buckets(stats, since, now, bucket)
        windows.append(
            {
                "key": key,
                "label": label,
                "summary": window_summary(buckets),
                "outcomes_svg": outcomes_chart_svg(buckets, _("Delivery attempts, %(window)s") % {"window": label}),
                "latency_svg": latency_chart_svg(
                    buckets, _("Response time percentiles, %(window)s") % {"window": label}
                ),
            }
        )
    return windows


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


@require_http_methods(["GET", "POST"])
@portal_view()
def endpoint_create(request: HttpRequest, access: PortalAccess) -> HttpResponse:
    form = SubscriptionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            subscription = form.save(access.owner_id)
            audit.record(access, AuditAction.SUBSCRIPTION_CREATED, subscription, changes=audited_values(subscription))
        messages.success(request, _("Endpoint created. Its signing secret is on its secret page."))
        return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)
    return render(
        request,
        "django_webhooks/portal/endpoint_form.html",
        {"title": _("New endpoint"), "form": form, "access": access, "subscription": None},
        status=400 if form.is_bound else 200,
    )


@require_http_methods(["GET", "POST"])
@portal_view()
def endpoint_edit(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    form = SubscriptionForm(request.POST or None, instance=subscription)
    if request.method == "POST" and form.is_valid():
        before = audited_values(subscription)
        with transaction.atomic():
            subscription = form.save(access.owner_id)
            changes = audit.field_changes(before, audited_values(subscription))
            if changes:
                audit.record(access, AuditAction.SUBSCRIPTION_UPDATED, subscription, changes=changes)
        messages.success(request, _("Endpoint saved."))
        return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)
    return render(
        request,
        "django_webhooks/portal/endpoint_form.html",
        {"title": _("Edit endpoint"), "form": form, "access": access, "subscription": subscription},
        status=400 if form.is_bound else 200,
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

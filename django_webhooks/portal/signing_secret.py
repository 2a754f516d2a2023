"""The signing secret page: reveal on an explicit POST, rotate with an overlap for the old secret."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from .. import secret_store
from ..conf import webhooks_settings
from ..exceptions import MissingSecret
from ..models import AuditAction, Subscription
from . import audit
from .access import PortalAccess, portal_view
from .endpoints import owned_subscription


def secret_page(
    request: HttpRequest, access: PortalAccess, subscription: Subscription, secret: str | None
) -> HttpResponse:
    now = timezone.now()
    overlap = webhooks_settings.SECRET_ROTATION_OVERLAP
    previous = subscription.secrets.filter(expires_at__gt=now).order_by("expires_at")
    context = {
        "title": _("Signing secret"),
        "access": access,
        "subscription": subscription,
        "secret": secret,
        "previous": list(previous),
        "overlap_hours": round(overlap / 3600, 1),
        "overlap_until": now + timedelta(seconds=overlap),
    }
    return render(request, "django_webhooks/portal/secret.html", context)


@require_http_methods(["GET", "POST"])
@portal_view()
def secret(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    """GET shows the page without the secret; POST (the reveal button) shows it, once, uncached."""
    subscription = owned_subscription(access, pk)
    if request.method != "POST":
        return secret_page(request, access, subscription, None)
    try:
        value = secret_store.current_secret(subscription)
    except MissingSecret:
        messages.error(request, _("This endpoint has no signing secret yet; rotate it to create one."))
        return redirect("django_webhooks_portal:secret", pk=subscription.pk)
    audit.record(access, AuditAction.SECRET_REVEALED, subscription)
    return secret_page(request, access, subscription, value)


@require_POST
@portal_view(strict=True)
def rotate_secret(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    overlap = webhooks_settings.SECRET_ROTATION_OVERLAP
    with transaction.atomic():
        secret_store.rotate_secret(subscription, overlap)
        audit.record(access, AuditAction.SECRET_ROTATED, subscription, changes={"overlap_seconds": overlap})
    until = timezone.localtime(timezone.now() + timedelta(seconds=overlap))
    messages.success(
        request,
        _("Rotated the signing secret. The previous one keeps signing too until %(until)s; reveal the new one below.")
        % {"until": date_format(until, "DATETIME_FORMAT")},
    )
    return redirect("django_webhooks_portal:secret", pk=subscription.pk)

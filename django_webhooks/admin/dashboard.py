"""The delivery dashboard: a custom admin page with charts of the last 24 hours and 7 days."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils.translation import gettext_lazy as _

from ..models import Delivery
from ..stats import dashboard_context


def dashboard_view(admin_site: AdminSite) -> Callable[[HttpRequest], TemplateResponse]:
    """The view of ``admin_site``'s dashboard; staff who may view deliveries may see it."""

    def view(request: HttpRequest) -> TemplateResponse:
        opts = Delivery._meta
        if not (
            request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}")
            or request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
        ):
            raise PermissionDenied
        context = {
            **admin_site.each_context(request),
            **dashboard_context(),
            "title": _("Delivery dashboard"),
            "opts": opts,
            "app_label": opts.app_label,
        }
        return TemplateResponse(request, "django_webhooks/admin/dashboard.html", context)

    return view

"""The delivery dashboard: a custom admin page with charts of the last 24 hours and 7 days.

Its figures come from the hourly :class:`~django_webhooks.models.AttemptStats` rows
(:func:`django_webhooks.stats.dashboard_context`), so the page costs the same at ten million
attempts as at ten. ``?subscription=<id>`` and ``?owner=<owner id>`` narrow it to one endpoint or
one owner's endpoints; a value that names nothing is reported on the page and ignored.

The hourly rows are registered as a model whose list *is* the dashboard
(:class:`AttemptStatsAdmin`), so the admin index and the navigation sidebar link to it, in the
host's admin index as it is, without overriding its template.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from ..exceptions import InvalidOwner
from ..models import AttemptStats, Delivery, Subscription
from ..owners import OWNER_KEY_MAX_LENGTH, get_owner, owner_key
from ..stats import dashboard_context


class DashboardFilterForm(forms.Form):
    """The dashboard's query parameters: one subscription, one owner, or both."""

    subscription = forms.IntegerField(label=_("Subscription id"), required=False, min_value=1)
    owner = forms.CharField(label=_("Owner id"), required=False, max_length=OWNER_KEY_MAX_LENGTH)

    def clean_subscription(self) -> Subscription | None:
        pk = self.cleaned_data.get("subscription")
        if pk is None:
            return None
        try:
            return Subscription.objects.get(pk=pk)
        except Subscription.DoesNotExist:
            raise forms.ValidationError(_("There is no subscription #%(pk)s."), params={"pk": pk})

    def clean_owner(self) -> str | None:
        value = (self.cleaned_data.get("owner") or "").strip()
        if not value:
            return None
        try:
            return owner_key(value)
        except InvalidOwner:
            raise forms.ValidationError(_("“%(value)s” is not an owner id."), params={"value": value})

    def narrowed(self, stats: QuerySet[AttemptStats]) -> QuerySet[AttemptStats]:
        """``stats`` limited to the valid filters (an invalid one is left out)."""
        data = self.cleaned_data if self.is_bound else {}
        if data.get("subscription") is not None:
            stats = stats.filter(subscription=data["subscription"])
        if data.get("owner") is not None:
            stats = stats.filter(subscription__owner_id=data["owner"])
        return stats

    def chosen(self) -> dict[str, Any]:
        """What the page says it shows: the subscription, the owner (instance when it exists) and its id."""
        data = self.cleaned_data if self.is_bound else {}
        key = data.get("owner")
        return {
            "subscription": data.get("subscription"),
            "owner_key": key,
            "owner": get_owner(key) if key is not None else None,
        }


def may_view_dashboard(request: HttpRequest) -> bool:
    """Staff who may view (or change) deliveries may see the dashboard."""
    opts = Delivery._meta
    return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or request.user.has_perm(
        f"{opts.app_label}.change_{opts.model_name}"
    )


def dashboard_view(admin_site: AdminSite) -> Callable[[HttpRequest], TemplateResponse]:
    """The view of ``admin_site``'s dashboard; staff who may view deliveries may see it."""

    def view(request: HttpRequest) -> TemplateResponse:
        opts = Delivery._meta
        if not may_view_dashboard(request):
            raise PermissionDenied
        form = DashboardFilterForm(request.GET)
        form.is_valid()  # fills cleaned_data with the valid fields and errors with the rest
        filtered = form.chosen()
        context = {
            **admin_site.each_context(request),
            **dashboard_context(stats=form.narrowed(AttemptStats.objects.all())),
            "title": _("Delivery dashboard"),
            "opts": opts,
            "app_label": opts.app_label,
            "filter_form": form,
            "filtered": filtered,
            "is_filtered": filtered["subscription"] is not None or filtered["owner_key"] is not None,
        }
        return TemplateResponse(request, "django_webhooks/admin/dashboard.html", context)

    return view


@admin.register(AttemptStats)
class AttemptStatsAdmin(admin.ModelAdmin):
    """The hourly statistics in the admin: their list is the dashboard, nobody edits them by hand."""

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return may_view_dashboard(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, str] | None = None
    ) -> HttpResponseRedirect:
        if not self.has_view_permission(request):
            raise PermissionDenied
        target = reverse(f"{self.admin_site.name}:django_webhooks_dashboard")
        query = request.GET.urlencode()
        return HttpResponseRedirect(f"{target}?{query}" if query else target)

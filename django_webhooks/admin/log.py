"""Read-only admins of the delivery log: events, deliveries and their attempts, plus resending."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..delivery import operations
from ..models import Delivery, DeliveryAttempt, Event
from ..owners import get_owners
from .common import (
    DeliveryEventTypeFilter,
    EventTypeFilter,
    LogAdmin,
    OwnerFilter,
    SubscriptionFilter,
    SubscriptionOwnerFilter,
    flat_field_names,
    masked_headers,
    owner_link,
    pretty_json,
    truncated,
)
from .dashboard import dashboard_view


def subscription_link(subscription: Any) -> str:
    url = reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])
    return format_html('<a href="{}">#{} {}</a>', url, subscription.pk, subscription.url)


def status_badge(succeeded: bool, label: Any) -> str:
    return format_html('<span class="{}">{}</span>', "dwh-status-ok" if succeeded else "dwh-status-bad", label)


class OwnersOnPageMixin:
    """Loads the owners of a list page in one query; ``owner_id_of`` picks an object's ``owner_id``."""

    def owner_id_of(self, obj: Any) -> str | None:
        return obj.owner_id

    def prepare_page(self, request: Any, page: list[Any]) -> None:
        owners = get_owners(self.owner_id_of(obj) for obj in page)
        for obj in page:
            obj.dwh_owners = owners

    @admin.display(description=_("owner"))
    def owner(self, obj: Any) -> str:
        owners = getattr(obj, "dwh_owners", None)
        if owners is None:
            owners = get_owners([self.owner_id_of(obj)])
        return owner_link(self.owner_id_of(obj), owners)


@admin.register(Event)
class EventAdmin(OwnersOnPageMixin, LogAdmin):
    list_display = ["id", "event_type", "owner", "created_at", "fanned_out_at", "idempotency_key"]
    list_filter = [EventTypeFilter, OwnerFilter]
    search_fields = ["=idempotency_key"]
    date_hierarchy = "created_at"
    fields = [
        "id",
        "event_type",
        "owner",
        "idempotency_key",
        "created_at",
        "fanned_out_at",
        "payload_json",
        "schema_errors",
        "deliveries_link",
    ]
    readonly_fields = fields

    def get_queryset(self, request: Any) -> QuerySet:
        return super().get_queryset(request).defer("payload", "body")

    def get_object(self, request: Any, object_id: str, from_field: str | None = None) -> Any:
        return Event.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None

    @admin.display(description=_("payload"))
    def payload_json(self, obj: Event) -> str:
        return pretty_json(obj.payload)

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, obj: Event) -> str:
        url = reverse("admin:django_webhooks_delivery_changelist") + f"?event__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Deliveries of this event"))


class DeliveryAttemptInline(admin.StackedInline):
    model = DeliveryAttempt
    extra = 0
    can_delete = False
    ordering = ["attempt_number", "id"]
    fields = [
        ("attempt_number", "created_at", "outcome", "duration_ms", "error_class"),
        "url",
        "request_headers_json",
        "response_headers_json",
        "response_body_preview",
        "error_message",
    ]
    readonly_fields = flat_field_names(fields)

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("response status"))
    def outcome(self, attempt: DeliveryAttempt) -> str:
        label = attempt.response_status or attempt.get_error_class_display() or "—"
        return status_badge(attempt.succeeded, label)

    @admin.display(description=_("request headers"))
    def request_headers_json(self, attempt: DeliveryAttempt) -> str:
        return pretty_json(masked_headers(attempt.request_headers))

    @admin.display(description=_("response headers"))
    def response_headers_json(self, attempt: DeliveryAttempt) -> str:
        return pretty_json(attempt.response_headers or {})

    @admin.display(description=_("response body"))
    def response_body_preview(self, attempt: DeliveryAttempt) -> str:
        return format_html('<pre class="dwh-json">{}</pre>', truncated(attempt.response_body or ""))


@admin.register(Delivery)
class DeliveryAdmin(OwnersOnPageMixin, LogAdmin):
    list_display = [
        "message_id",
        "event_type",
        "subscription_column",
        "owner",
        "status",
        "attempts",
        "last_status_code",
        "created_at",
        "next_attempt_at",
    ]
    list_filter = ["status", DeliveryEventTypeFilter, SubscriptionFilter, SubscriptionOwnerFilter]
    list_select_related = ["event", "subscription"]
    search_fields = ["=message_id"]
    date_hierarchy = "created_at"
    actions = ["resend_deliveries"]
    change_form_template = "django_webhooks/admin/delivery_change_form.html"
    inlines = [DeliveryAttemptInline]
    fields = [
        ("message_id", "status"),
        ("event_link", "subscription_column", "owner"),
        ("attempts", "last_status_code", "last_error"),
        ("created_at", "next_attempt_at", "completed_at"),
        "payload_json",
    ]
    readonly_fields = flat_field_names(fields)

    def get_queryset(self, request: Any) -> QuerySet:
        return (
            super().get_queryset(request).select_related("event", "subscription").defer("event__payload", "event__body")
        )

    def lookup_allowed(self, lookup: str, value: str, request: Any = None) -> bool:
        return lookup == "event__id__exact" or super().lookup_allowed(lookup, value, request)

    def owner_id_of(self, obj: Delivery) -> str | None:
        return obj.subscription.owner_id

    def has_resend_permission(self, request: Any) -> bool:
        """Resending changes a delivery, so it takes the ``change_delivery`` permission."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    @admin.display(description=_("event type"), ordering="event__event_type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.event_type

    @admin.display(description=_("subscription"))
    def subscription_column(self, obj: Delivery) -> str:
        return subscription_link(obj.subscription)

    @admin.display(description=_("event"))
    def event_link(self, obj: Delivery) -> str:
        url = reverse("admin:django_webhooks_event_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a>', url, obj.event)

    @admin.display(description=_("payload (the exact body sent)"))
    def payload_json(self, obj: Delivery) -> str:
        event = Event.objects.only("body", "payload").get(pk=obj.event_id)
        return pretty_json(event.body or event.payload)

    @admin.action(description=_("Resend selected deliveries"), permissions=["resend"])
    def resend_deliveries(self, request: Any, queryset: QuerySet) -> None:
        count = 0
        for delivery in queryset.select_related("event", "subscription"):
            operations.resend(delivery)
            count += 1
        self.message_user(
            request,
            ngettext(
                "Queued %(count)d delivery to be sent again.", "Queued %(count)d deliveries to be sent again.", count
            )
            % {"count": count},
            messages.SUCCESS,
        )

    def get_urls(self) -> list:
        return [
            path(
                "<int:object_id>/resend/",
                self.admin_site.admin_view(self.resend_view),
                name="django_webhooks_delivery_resend",
            ),
            path(
                "dashboard/",
                self.admin_site.admin_view(dashboard_view(self.admin_site)),
                name="django_webhooks_dashboard",
            ),
            *super().get_urls(),
        ]

    def resend_view(self, request: Any, object_id: int) -> Any:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_resend_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery.objects.select_related("event", "subscription"), pk=object_id)
        operations.resend(delivery)
        self.message_user(request, _("Queued %(delivery)s to be sent again.") % {"delivery": delivery.message_id})
        return HttpResponseRedirect(reverse("admin:django_webhooks_delivery_change", args=[delivery.pk]))

    def changeform_view(
        self, request: Any, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> Any:
        extra_context = {**(extra_context or {}), "can_resend": self.has_resend_permission(request)}
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(OwnersOnPageMixin, LogAdmin):
    list_display = [
        "id",
        "delivery_link",
        "subscription_column",
        "owner",
        "attempt_number",
        "outcome",
        "error_class",
        "duration_ms",
        "created_at",
    ]
    list_filter = ["succeeded", "error_class", SubscriptionFilter, SubscriptionOwnerFilter]
    list_select_related = ["delivery", "subscription"]
    search_fields = ["=delivery__message_id"]
    date_hierarchy = "created_at"
    fields = [("delivery_link", "subscription_column", "owner"), *DeliveryAttemptInline.fields]
    readonly_fields = flat_field_names(fields)

    def get_queryset(self, request: Any) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("delivery", "subscription")
            .defer("request_headers", "response_headers", "response_body", "error_message")
        )

    def get_object(self, request: Any, object_id: str, from_field: str | None = None) -> Any:
        if not str(object_id).isdigit():
            return None
        return DeliveryAttempt.objects.select_related("delivery", "subscription").filter(pk=object_id).first()

    def owner_id_of(self, obj: DeliveryAttempt) -> str | None:
        return obj.subscription.owner_id

    @admin.display(description=_("delivery"))
    def delivery_link(self, obj: DeliveryAttempt) -> str:
        url = reverse("admin:django_webhooks_delivery_change", args=[obj.delivery_id])
        return format_html('<a href="{}">{}</a>', url, obj.delivery.message_id)

    @admin.display(description=_("subscription"))
    def subscription_column(self, obj: DeliveryAttempt) -> str:
        return subscription_link(obj.subscription)

    @admin.display(description=_("response status"), ordering="response_status")
    def outcome(self, obj: DeliveryAttempt) -> str:
        return status_badge(obj.succeeded, obj.response_status or obj.get_error_class_display() or "—")

    request_headers_json = DeliveryAttemptInline.request_headers_json
    response_headers_json = DeliveryAttemptInline.response_headers_json
    response_body_preview = DeliveryAttemptInline.response_body_preview

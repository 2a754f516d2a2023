"""Read-only admins of the delivery log: events, deliveries and their attempts, plus resending."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..delivery import operations
from ..delivery.headers import masked_headers
from ..log_search import ATTEMPT_PATHS, DELIVERY_PATHS, EVENT_PATHS
from ..models import Delivery, DeliveryAttempt, DeliveryStatus, Event, Subscription
from ..owners import get_owners
from .common import (
    DeliveryEventTypeFilter,
    EventTypeFilter,
    LogAdmin,
    OwnerFilter,
    SubscriptionFilter,
    SubscriptionOwnerFilter,
    elapsed,
    flat_field_names,
    owner_link,
    precise_time,
    pretty_json,
    truncated,
)
from .dashboard import dashboard_view


def subscription_link(subscription: Subscription) -> str:
    url = reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])
    return format_html('<a href="{}">#{} {}</a>', url, subscription.pk, subscription.url)


def status_badge(succeeded: bool, label: object) -> str:
    return format_html('<span class="{}">{}</span>', "dwh-status-ok" if succeeded else "dwh-status-bad", label)


#: Where an object on a list page keeps the owners of the page (loaded at once by ``prepare_page``).
OWNERS_KEY = "dwh_owners"


_M = TypeVar("_M", bound=Model)


class OwnersOnPageMixin(Generic[_M]):
    """Loads the owners of a list page in one query; ``owner_id_of`` picks an object's ``owner_id``."""

    def owner_id_of(self, obj: _M) -> str | None:
        raise NotImplementedError

    def prepare_page(self, request: HttpRequest, page: list[_M]) -> None:
        owners = get_owners(self.owner_id_of(obj) for obj in page)
        for obj in page:
            obj.__dict__[OWNERS_KEY] = owners

    @admin.display(description=_("owner"))
    def owner(self, obj: _M) -> str:
        owners: dict[str, Model] | None = obj.__dict__.get(OWNERS_KEY)
        if owners is None:
            owners = get_owners([self.owner_id_of(obj)])
        return owner_link(self.owner_id_of(obj), owners)


@admin.register(Event)
class EventAdmin(OwnersOnPageMixin[Event], LogAdmin):
    list_display = ["id", "event_type", "owner", "created", "fanned_out", "idempotency_key"]
    list_filter = [EventTypeFilter, OwnerFilter]
    log_search_paths = EVENT_PATHS
    date_hierarchy = "created_at"
    fields = [
        "id",
        "event_type",
        "owner",
        "idempotency_key",
        "created",
        "fanned_out",
        "payload_json",
        "schema_errors",
        "deliveries_link",
    ]
    readonly_fields = flat_field_names(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return super().get_queryset(request).defer("payload", "body")

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Event | None:
        return Event.objects.filter(pk=object_id).first() if str(object_id).isdigit() else None

    def owner_id_of(self, obj: Event) -> str | None:
        return obj.owner_id

    @admin.display(description=_("created at"), ordering="created_at")
    def created(self, obj: Event) -> str:
        return precise_time(obj.created_at)

    @admin.display(description=_("fanned out at"), ordering="fanned_out_at")
    def fanned_out(self, obj: Event) -> str:
        return precise_time(obj.fanned_out_at)

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
        ("attempt_number", "sent_at", "outcome", "duration_ms", "error_class"),
        "url",
        "request_headers_json",
        "response_headers_json",
        "response_body_preview",
        "error_message",
    ]
    readonly_fields = flat_field_names(fields)

    def has_add_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    @admin.display(description=_("response status"))
    def outcome(self, attempt: DeliveryAttempt) -> str:
        label = attempt.response_status or attempt.get_error_class_display() or "—"
        return status_badge(attempt.succeeded, label)

    @admin.display(description=_("sent at"))
    def sent_at(self, attempt: DeliveryAttempt) -> str:
        """To the second, and how long after the delivery was created: the retry schedule at a glance."""
        since = (attempt.created_at - attempt.delivery.created_at).total_seconds()
        return format_html(
            '{} <span class="quiet" title="{}">{}</span>',
            precise_time(attempt.created_at),
            _("after the delivery was created"),
            elapsed(since),
        )

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
class DeliveryAdmin(OwnersOnPageMixin[Delivery], LogAdmin):
    list_display = [
        "message_id",
        "event_type",
        "subscription_column",
        "owner",
        "status",
        "attempts",
        "last_status_code",
        "created",
        "next_attempt",
    ]
    list_filter = ["status", DeliveryEventTypeFilter, SubscriptionFilter, SubscriptionOwnerFilter]
    list_select_related = ["event", "subscription"]
    log_search_paths = DELIVERY_PATHS
    date_hierarchy = "created_at"
    actions = ["resend_deliveries", "cancel_deliveries"]
    change_form_template = "django_webhooks/admin/delivery_change_form.html"
    inlines = [DeliveryAttemptInline]
    fields = [
        ("message_id", "status"),
        ("event_link", "subscription_column", "owner"),
        ("attempts", "last_status_code", "last_error"),
        ("created", "next_attempt", "completed"),
        "payload_json",
    ]
    readonly_fields = flat_field_names(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("event", "subscription")
            .defer("body", "event__payload", "event__body")
        )

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        return lookup == "event__id__exact" or super().lookup_allowed(lookup, value, request)

    def owner_id_of(self, obj: Delivery) -> str | None:
        return obj.subscription.owner_id

    def has_resend_permission(self, request: HttpRequest) -> bool:
        """Resending changes a delivery, so it takes the ``change_delivery`` permission."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """Cancelling changes a delivery too: ``change_delivery``."""
        return self.has_resend_permission(request)

    @admin.display(description=_("event type"), ordering="event__event_type")
    def event_type(self, obj: Delivery) -> str:
        return obj.event.event_type

    @admin.display(description=_("created at"), ordering="created_at")
    def created(self, obj: Delivery) -> str:
        return precise_time(obj.created_at)

    @admin.display(description=_("next attempt at"), ordering="next_attempt_at")
    def next_attempt(self, obj: Delivery) -> str:
        return precise_time(obj.next_attempt_at)

    @admin.display(description=_("completed at"), ordering="completed_at")
    def completed(self, obj: Delivery) -> str:
        return precise_time(obj.completed_at)

    @admin.display(description=_("subscription"))
    def subscription_column(self, obj: Delivery) -> str:
        return subscription_link(obj.subscription)

    @admin.display(description=_("event"))
    def event_link(self, obj: Delivery) -> str:
        url = reverse("admin:django_webhooks_event_change", args=[obj.event_id])
        return format_html('<a href="{}">{}</a>', url, obj.event)

    @admin.display(description=_("payload (the exact body sent)"))
    def payload_json(self, obj: Delivery) -> str:
        if obj.body:  # another format or an older version than the event's own body
            return pretty_json(obj.body)
        event = Event.objects.only("body", "payload").get(pk=obj.event_id)
        return pretty_json(event.body or event.payload)

    @admin.action(description=_("Resend selected deliveries"), permissions=["resend"])
    def resend_deliveries(self, request: HttpRequest, queryset: QuerySet) -> None:
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

    @admin.action(description=_("Cancel selected pending deliveries"), permissions=["cancel"])
    def cancel_deliveries(self, request: HttpRequest, queryset: QuerySet) -> None:
        cancelled = skipped = 0
        for delivery in queryset.select_related("subscription"):
            if operations.cancel(delivery):
                cancelled += 1
            else:
                skipped += 1
        self.message_user(
            request,
            ngettext("Cancelled %(count)d pending delivery.", "Cancelled %(count)d pending deliveries.", cancelled)
            % {"count": cancelled},
            messages.SUCCESS if cancelled else messages.WARNING,
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d delivery was not pending (in flight or final) and was left as it is.",
                    "%(count)d deliveries were not pending (in flight or final) and were left as they are.",
                    skipped,
                )
                % {"count": skipped},
                messages.WARNING,
            )

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/resend/",
                self.admin_site.admin_view(self.resend_view),
                name="django_webhooks_delivery_resend",
            ),
            path(
                "<int:object_id>/cancel/",
                self.admin_site.admin_view(self.cancel_view),
                name="django_webhooks_delivery_cancel",
            ),
            path(
                "dashboard/",
                self.admin_site.admin_view(dashboard_view(self.admin_site)),
                name="django_webhooks_dashboard",
            ),
            *super().get_urls(),
        ]

    def resend_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_resend_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery.objects.select_related("event", "subscription"), pk=object_id)
        operations.resend(delivery)
        self.message_user(request, _("Queued %(delivery)s to be sent again.") % {"delivery": delivery.message_id})
        return HttpResponseRedirect(reverse("admin:django_webhooks_delivery_change", args=[delivery.pk]))

    def cancel_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_cancel_permission(request):
            raise PermissionDenied
        delivery = get_object_or_404(Delivery.objects.select_related("subscription"), pk=object_id)
        if operations.cancel(delivery):
            self.message_user(request, _("Cancelled %(delivery)s.") % {"delivery": delivery.message_id})
        else:
            self.message_user(
                request,
                _("%(delivery)s is %(status)s, not pending, so it was not cancelled.")
                % {"delivery": delivery.message_id, "status": delivery.get_status_display()},
                messages.WARNING,
            )
        return HttpResponseRedirect(reverse("admin:django_webhooks_delivery_change", args=[delivery.pk]))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        can_change = self.has_resend_permission(request)
        pending = bool(
            object_id
            and object_id.isdigit()
            and Delivery.objects.filter(pk=object_id, status=DeliveryStatus.PENDING).exists()
        )
        extra_context = {**(extra_context or {}), "can_resend": can_change, "can_cancel": can_change and pending}
        return super().changeform_view(request, object_id, form_url, extra_context)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(OwnersOnPageMixin[DeliveryAttempt], LogAdmin):
    list_display = [
        "id",
        "delivery_link",
        "subscription_column",
        "owner",
        "attempt_number",
        "outcome",
        "error_class",
        "duration_ms",
        "created",
    ]
    list_filter = ["succeeded", "error_class", SubscriptionFilter, SubscriptionOwnerFilter]
    list_select_related = ["delivery", "subscription"]
    log_search_paths = ATTEMPT_PATHS
    date_hierarchy = "created_at"
    fields = [("delivery_link", "subscription_column", "owner"), *DeliveryAttemptInline.fields]
    readonly_fields = flat_field_names(fields)

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .select_related("delivery", "subscription")
            .defer("request_headers", "response_headers", "response_body", "error_message")
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> DeliveryAttempt | None:
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

    @admin.display(description=_("created at"), ordering="created_at")
    def created(self, obj: DeliveryAttempt) -> str:
        return precise_time(obj.created_at)

    sent_at = DeliveryAttemptInline.sent_at
    request_headers_json = DeliveryAttemptInline.request_headers_json
    response_headers_json = DeliveryAttemptInline.response_headers_json
    response_body_preview = DeliveryAttemptInline.response_body_preview

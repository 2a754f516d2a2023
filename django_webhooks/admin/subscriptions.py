"""Subscription admin: health at a glance, validated form, secret reveal/rotation and operations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import receiver_auth, secret_store
from ..api import key_sets
from ..conf import webhooks_settings
from ..delivery import handshake, operations
from ..delivery.health import health_for
from ..delivery.operations import describe_attempt
from ..exceptions import MissingSecret
from ..models import AttemptStats, Subscription
from ..stats import window_charts
from .common import OwnerFilter, PageChangeList, SubscribedEventTypeFilter
from .forms import ActionForm, DisableForm, RecoverForm, SubscriptionAdminForm
from .log import OwnersOnPageMixin, status_badge

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger("django_webhooks.admin")

#: Subscriptions a "send test event" click sends to at most (each is a synchronous request).
TEST_EVENT_LIMIT = 10
#: Where a subscription on a list page keeps its health figures (loaded for the whole page at once).
HEALTH_KEY = "dwh_health"


class HealthFilter(admin.SimpleListFilter):
    title = _("health")
    parameter_name = "health"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, StrOrPromise]]:
        return [("failing", _("failing")), ("healthy", _("healthy")), ("circuit_open", _("circuit open"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        now = timezone.now()
        failing = Q(consecutive_failures__gt=0) | Q(failing_since__isnull=False)
        if self.value() == "failing":
            return queryset.filter(failing)
        if self.value() == "healthy":
            return queryset.exclude(failing).exclude(circuit_open_until__gt=now)
        if self.value() == "circuit_open":
            return queryset.filter(circuit_open_until__gt=now)
        return queryset


def subscription_activity(subscription: Subscription, now: datetime | None = None) -> list[dict[str, Any]]:
    """The change page's charts: attempts per hour and latency percentiles of the last 24 hours and
    7 days, from the subscription's hourly :class:`~django_webhooks.models.AttemptStats` (one query
    of at most 168 rows, however many attempts they count)."""
    return window_charts(
        AttemptStats.objects.filter(subscription=subscription),
        now or timezone.now(),
        outcomes_title=gettext("Attempts per hour to this endpoint, %(window)s"),
        latency_title=gettext("Latency percentiles per hour of this endpoint, %(window)s"),
    )


@admin.register(Subscription)
class SubscriptionAdmin(OwnersOnPageMixin[Subscription], admin.ModelAdmin):
    form = SubscriptionAdminForm
    show_full_result_count = False
    list_display = [
        "id",
        "url",
        "owner",
        "event_types_column",
        "enabled",
        "circuit_state",
        "success_rate_24h",
        "last_delivery",
    ]
    list_display_links = ["id", "url"]
    list_filter = ["enabled", OwnerFilter, SubscribedEventTypeFilter, HealthFilter]
    search_fields = ["url", "=owner_id", "description"]
    actions = [
        "send_test_event",
        "verify_endpoints",
        "enable_subscriptions",
        "disable_subscriptions",
        "rotate_secrets",
        "recover_subscriptions",
    ]
    change_form_template = "django_webhooks/admin/subscription_change_form.html"
    change_list_template = "django_webhooks/admin/subscription_change_list.html"
    readonly_fields = [
        "state",
        "verification",
        "health_summary",
        "deliveries_link",
        "signing_keys_summary",
        "receiver_auth_summary",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (None, {"fields": ["owner_id", "url", "description", "event_types"]}),
        (
            _("Delivery"),
            {
                "fields": [
                    "filters",
                    "headers",
                    "ordered",
                    "max_in_flight",
                    "rate_limit",
                    "send_traceparent",
                    "verify_endpoint",
                ]
            },
        ),
        (_("Payload"), {"fields": ["payload_format", "event_versions"]}),
        (_("Signatures"), {"fields": ["signature_scheme", "signing_keys_summary"]}),
        (
            _("Receiver authentication"),
            {
                "fields": [
                    "receiver_auth_summary",
                    "auth_method",
                    ("auth_username", "auth_password"),
                    ("auth_header_name", "auth_token"),
                    "auth_token_url",
                    ("auth_client_id", "auth_client_auth"),
                    "auth_client_secret",
                    ("auth_private_key", "auth_key_id"),
                    ("auth_scope", "auth_audience", "auth_resource"),
                    ("auth_client_certificate", "auth_client_key"),
                    "auth_ca_bundle",
                ],
                "description": _(
                    "How requests prove to the receiver who sends them. Secrets are never shown: leave a secret "
                    "empty to keep it, type a new one to replace it."
                ),
            },
        ),
        (
            _("State"),
            {"fields": ["state", "verification", "health_summary", "deliveries_link", "created_at", "updated_at"]},
        ),
    ]

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PageChangeList

    def owner_id_of(self, obj: Subscription) -> str | None:
        return obj.owner_id

    def prepare_page(self, request: HttpRequest, page: list[Subscription]) -> None:
        super().prepare_page(request, page)
        health = health_for(page)
        for subscription in page:
            subscription.__dict__[HEALTH_KEY] = health.get(subscription.pk, {})

    def get_fieldsets(self, request: HttpRequest, obj: Subscription | None = None) -> list:
        return self.fieldsets if obj is not None else self.fieldsets[:5]

    # -- list columns ---------------------------------------------------------------------------

    @admin.display(description=_("event types"))
    def event_types_column(self, obj: Subscription) -> str:
        return ", ".join(obj.event_types) or "—"

    def _health(self, obj: Subscription) -> dict[str, Any]:
        """The figures :meth:`prepare_page` loaded for the page, else this subscription's own."""
        health: dict[str, Any] | None = obj.__dict__.get(HEALTH_KEY)
        if health is None:
            health = obj.__dict__[HEALTH_KEY] = health_for([obj]).get(obj.pk, {})
        return health

    @admin.display(description=_("circuit"))
    def circuit_state(self, obj: Subscription) -> str:
        state = self._health(obj).get("circuit_state") or ("open" if obj.circuit_is_open() else "closed")
        return status_badge(state != "open", state)

    @admin.display(description=_("success 24 h"))
    def success_rate_24h(self, obj: Subscription) -> str:
        rate = self._health(obj).get("success_rate_24h")
        if rate is None:
            return "—"
        return status_badge(rate >= 0.95, f"{rate * 100:.0f} %")

    @admin.display(description=_("last delivery"))
    def last_delivery(self, obj: Subscription) -> str:
        health = self._health(obj)
        times = [t for t in (health.get("last_success_at"), health.get("last_failure_at")) if t]
        if not times:
            return "—"
        last: datetime = max(times)
        succeeded = health.get("last_success_at") == last
        status = health.get("last_status") or health.get("last_error_class") or ("ok" if succeeded else "failed")
        return format_html(
            "{} <span class='quiet'>{}</span>",
            status_badge(succeeded, status),
            timezone.localtime(last).strftime("%Y-%m-%d %H:%M"),
        )

    # -- change page ----------------------------------------------------------------------------

    @admin.display(description=_("state"))
    def state(self, obj: Subscription) -> str:
        if obj.enabled:
            return status_badge(True, _("enabled"))
        return format_html(
            "{} <span class='quiet'>{} — {}</span>",
            status_badge(False, _("disabled")),
            timezone.localtime(obj.disabled_at).strftime("%Y-%m-%d %H:%M") if obj.disabled_at else "—",
            obj.disabled_reason or _("no reason given"),
        )

    @admin.display(description=_("endpoint verification"))
    def verification(self, obj: Subscription) -> str:
        """The handshake's state (:mod:`~django_webhooks.delivery.handshake`), its last error and next run."""
        state = handshake.verification_state(obj)
        label = dict(handshake.VerificationState.CHOICES)[state]
        if state == handshake.VerificationState.VERIFIED:
            when = timezone.localtime(obj.verified_at).strftime("%Y-%m-%d %H:%M") if obj.verified_at else "—"
            return format_html("{} <span class='quiet'>{}</span>", status_badge(True, label), when)
        if state == handshake.VerificationState.NOT_REQUIRED:
            return format_html("<span class='quiet'>{}</span>", label)
        next_run = (
            timezone.localtime(obj.next_verification_at).strftime("%Y-%m-%d %H:%M")
            if obj.next_verification_at
            else gettext("at the next sweep")
        )
        return format_html(
            "{} <span class='quiet'>{} · {}: {} · {}: {}</span>",
            status_badge(False, label),
            obj.verification_error or gettext("no answer yet"),
            gettext("failed handshakes"),
            obj.verification_failures,
            gettext("next try"),
            next_run,
        )

    @admin.display(description=_("health"))
    def health_summary(self, obj: Subscription) -> str:
        health = self._health(obj)
        rate = health.get("success_rate_24h")
        return format_html(
            "{}: {} · {}: {} · p50 {} ms · p95 {} ms · {}: {} · {}: {}",
            _("success 24 h"),
            "—" if rate is None else f"{rate * 100:.1f} %",
            _("attempts 24 h"),
            health.get("attempts_24h", 0),
            "—" if health.get("p50_ms") is None else f"{health['p50_ms']:.0f}",
            "—" if health.get("p95_ms") is None else f"{health['p95_ms']:.0f}",
            _("consecutive failures"),
            obj.consecutive_failures,
            _("circuit"),
            self.circuit_state(obj),
        )

    @admin.display(description=_("v1a public keys"))
    def signing_keys_summary(self, obj: Subscription) -> str:
        """The public keys (nothing secret), where they are published, and a button to rotate the key."""
        if obj.pk is None:
            return gettext("A subscription that signs v1a gets its key pair when it is saved.")
        keys = secret_store.public_signing_keys(obj)
        rows = format_html_join(
            "",
            "<li><code>{}</code> <span class='quiet'>kid {} · {}</span></li>",
            ((key.public_key, key.kid, self._key_state(key.expires_at)) for key in keys),
        )
        published: str
        try:
            published = format_html(
                "{} <code>{}</code>", gettext("Published for receivers at"), key_sets.key_set_url(obj)
            )
        except NoReverseMatch:
            published = gettext("Include django_webhooks.api.urls to publish them for receivers.")
        return format_html(
            "{}<div class='quiet'>{}</div>"
            '<button type="submit" class="dwh-button" formaction="{}" id="rotate-signing-key">{}</button>',
            format_html("<ul>{}</ul>", rows) if keys else gettext("No signing key yet."),
            published,
            reverse("admin:django_webhooks_subscription_rotate_signing_key", args=[obj.pk]),
            gettext("Rotate signing key"),
        )

    @admin.display(description=_("stored"))
    def receiver_auth_summary(self, obj: Subscription) -> str:
        """The method, which secrets are stored (never their values) and the client certificate's expiry."""
        auth = getattr(obj, "receiver_auth", None) if obj.pk is not None else None
        if auth is None:
            return gettext("No authentication.")
        described = receiver_auth.describe_auth(auth)
        expires_at = described["client_certificate_expires_at"]
        certificate: str = "—"
        if expires_at is not None:
            soon = expires_at - timezone.now() < receiver_auth.CERTIFICATE_WARNING
            certificate = format_html(
                "{} {}",
                gettext("client certificate expires"),
                status_badge(not soon, timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M")),
            )
        return format_html(
            "{} · {}: {} · {}",
            auth.get_method_display(),
            gettext("secrets stored"),
            ", ".join(described["secrets_set"]) or "—",
            certificate,
        )

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if isinstance(form, SubscriptionAdminForm) and form.auth_changed():
            receiver_auth.configure_auth(obj, **form.auth_values())

    @staticmethod
    def _key_state(expires_at: datetime | None) -> str:
        if expires_at is None:
            return gettext("current")
        return gettext("signs until %(until)s") % {"until": timezone.localtime(expires_at).strftime("%Y-%m-%d %H:%M")}

    @admin.display(description=_("deliveries"))
    def deliveries_link(self, obj: Subscription) -> str:
        url = reverse("admin:django_webhooks_delivery_changelist") + f"?subscription={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("Deliveries to this subscription"))

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        extra_context = dict(extra_context or {})
        if object_id and str(object_id).isdigit():
            subscription = Subscription.objects.filter(pk=object_id).first()
            if subscription is not None and self.has_change_permission(request, subscription):
                extra_context["signing_secret"] = self._secret_summary(subscription)
            if subscription is not None:
                extra_context["activity"] = subscription_activity(subscription)
                extra_context["dashboard_url"] = (
                    reverse("admin:django_webhooks_dashboard") + f"?subscription={subscription.pk}"
                )
        return super().changeform_view(request, object_id, form_url, extra_context)

    @staticmethod
    def _secret_summary(subscription: Subscription) -> dict[str, Any]:
        """What the change page says about the secrets: dates and buttons, never a secret (nothing decrypted)."""
        now = timezone.now()
        rows = list(
            subscription.secrets.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now)).values_list(
                "created_at", "expires_at"
            )
        )
        current = [created_at for created_at, expires_at in rows if expires_at is None]
        previous = [expires_at for _created_at, expires_at in rows if expires_at is not None]
        return {
            "current_since": max(current) if current else None,
            "previous_count": len(previous),
            "previous_until": max(previous) if previous else None,
            "reveal_url": reverse("admin:django_webhooks_subscription_reveal_secret", args=[subscription.pk]),
            "rotate_url": reverse("admin:django_webhooks_subscription_rotate_secret", args=[subscription.pk]),
        }

    def get_urls(self) -> list[URLPattern]:
        return [
            path(
                "<int:object_id>/reveal-secret/",
                self.admin_site.admin_view(self.reveal_secret_view),
                name="django_webhooks_subscription_reveal_secret",
            ),
            path(
                "<int:object_id>/rotate-secret/",
                self.admin_site.admin_view(self.rotate_secret_view),
                name="django_webhooks_subscription_rotate_secret",
            ),
            path(
                "<int:object_id>/rotate-signing-key/",
                self.admin_site.admin_view(self.rotate_signing_key_view),
                name="django_webhooks_subscription_rotate_signing_key",
            ),
            *super().get_urls(),
        ]

    def _changeable_subscription(self, request: HttpRequest, object_id: int) -> Subscription:
        subscription = get_object_or_404(Subscription, pk=object_id)
        if not self.has_change_permission(request, subscription):
            raise PermissionDenied
        return subscription

    def reveal_secret_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """Show the current secret on a page of its own: POST only (CSRF-checked by ``admin_view``),
        for staff who may change the subscription; each reveal is logged and kept in its history."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        subscription = self._changeable_subscription(request, object_id)
        change_url = reverse("admin:django_webhooks_subscription_change", args=[subscription.pk])
        try:
            secret = secret_store.current_secret(subscription)
        except MissingSecret:
            self.message_user(
                request, _("This subscription has no signing secret yet; rotate it to create one."), messages.WARNING
            )
            return HttpResponseRedirect(change_url)
        logger.info(
            "Staff user %s (pk %s) revealed the signing secret of subscription %s.",
            request.user.get_username(),
            request.user.pk,
            subscription.pk,
        )
        self.log_change(request, subscription, _("Revealed the signing secret."))
        context = {
            **self.admin_site.each_context(request),
            "title": _("Signing secret"),
            "opts": self.opts,
            "original": subscription,
            "secret": secret,
            "change_url": change_url,
        }
        response = TemplateResponse(request, "django_webhooks/admin/subscription_secret.html", context)
        add_never_cache_headers(response)
        return response

    def rotate_secret_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        subscription = self._changeable_subscription(request, object_id)
        secret_store.rotate_secret(subscription)
        self.message_user(request, self._rotated_message(1), messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:django_webhooks_subscription_change", args=[subscription.pk]))

    def rotate_signing_key_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        subscription = self._changeable_subscription(request, object_id)
        secret_store.rotate_signing_key(subscription)
        hours = webhooks_settings.SECRET_ROTATION_OVERLAP / 3600
        message = gettext("Rotated the v1a signing key; the previous key keeps signing for %(hours)g hours.")
        self.message_user(request, message % {"hours": hours}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:django_webhooks_subscription_change", args=[subscription.pk]))

    @staticmethod
    def _rotated_message(count: int) -> str:
        hours = webhooks_settings.SECRET_ROTATION_OVERLAP / 3600
        return ngettext(
            "Rotated the signing secret of %(count)d subscription; the previous secret keeps signing for %(hours)g hours.",
            "Rotated the signing secrets of %(count)d subscriptions; the previous secrets keep signing for %(hours)g hours.",
            count,
        ) % {"count": count, "hours": hours}

    # -- actions --------------------------------------------------------------------------------

    @admin.action(description=_("Send a test event"), permissions=["change"])
    def send_test_event(self, request: HttpRequest, queryset: QuerySet) -> None:
        subscriptions = list(queryset.order_by("pk")[: TEST_EVENT_LIMIT + 1])
        for subscription in subscriptions[:TEST_EVENT_LIMIT]:
            attempt = operations.send_test_event(subscription)
            delivery_url = reverse("admin:django_webhooks_delivery_change", args=[attempt.delivery_id])
            self.message_user(
                request,
                format_html(
                    gettext('Test event to #{} {}: <strong>{}</strong>. <a href="{}">View the delivery</a>.'),
                    subscription.pk,
                    subscription.url,
                    describe_attempt(attempt),
                    delivery_url,
                ),
                messages.SUCCESS if attempt.succeeded else messages.ERROR,
            )
        if len(subscriptions) > TEST_EVENT_LIMIT:
            self.message_user(
                request,
                _("Test events are sent to %(limit)d subscriptions at a time; the others were skipped.")
                % {"limit": TEST_EVENT_LIMIT},
                messages.WARNING,
            )

    @admin.action(description=_("Run the endpoint handshake now"), permissions=["change"])
    def verify_endpoints(self, request: HttpRequest, queryset: QuerySet) -> None:
        subscriptions = list(queryset.order_by("pk")[: TEST_EVENT_LIMIT + 1])
        for subscription in subscriptions[:TEST_EVENT_LIMIT]:
            outcome = handshake.verify(subscription)
            if outcome.passed:
                text = gettext("Endpoint handshake of #%(pk)s %(url)s passed.")
            else:
                text = gettext("Endpoint handshake of #%(pk)s %(url)s failed: %(error)s")
            self.message_user(
                request,
                text % {"pk": subscription.pk, "url": outcome.url, "error": outcome.error},
                messages.SUCCESS if outcome.passed else messages.ERROR,
            )
        if len(subscriptions) > TEST_EVENT_LIMIT:
            self.message_user(
                request,
                _("Handshakes run for %(limit)d subscriptions at a time; the others were skipped.")
                % {"limit": TEST_EVENT_LIMIT},
                messages.WARNING,
            )

    @admin.action(description=_("Enable"), permissions=["change"])
    def enable_subscriptions(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for subscription in queryset:
            operations.enable(subscription)
            count += 1
        self.message_user(
            request,
            ngettext("Enabled %(count)d subscription.", "Enabled %(count)d subscriptions.", count) % {"count": count},
            messages.SUCCESS,
        )

    @admin.action(description=_("Disable with a reason…"), permissions=["change"])
    def disable_subscriptions(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        def disable(data: dict[str, Any]) -> None:
            count = 0
            for subscription in queryset:
                operations.disable(subscription, data["reason"])
                count += 1
            self.message_user(
                request,
                ngettext(
                    "Disabled %(count)d subscription: %(reason)s", "Disabled %(count)d subscriptions: %(reason)s", count
                )
                % {"count": count, "reason": data["reason"]},
                messages.SUCCESS,
            )

        return self._intermediate(request, queryset, DisableForm, _("Disable subscriptions"), disable)

    @admin.action(description=_("Rotate the signing secret"), permissions=["change"])
    def rotate_secrets(self, request: HttpRequest, queryset: QuerySet) -> None:
        count = 0
        for subscription in queryset:
            secret_store.rotate_secret(subscription)
            count += 1
        self.message_user(request, self._rotated_message(count), messages.SUCCESS)

    @admin.action(description=_("Recover failed deliveries since…"), permissions=["change"])
    def recover_subscriptions(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        def recover(data: dict[str, Any]) -> None:
            total = sum(operations.recover(subscription, data["since"]) for subscription in queryset)
            self.message_user(
                request,
                ngettext(
                    "Queued %(count)d failed delivery since %(since)s to be sent again.",
                    "Queued %(count)d failed deliveries since %(since)s to be sent again.",
                    total,
                )
                % {"count": total, "since": timezone.localtime(data["since"]).strftime("%Y-%m-%d %H:%M %Z")},
                messages.SUCCESS,
            )

        return self._intermediate(request, queryset, RecoverForm, _("Recover failed deliveries"), recover)

    def _intermediate(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        form_class: type[ActionForm],
        title: StrOrPromise,
        perform: Callable[[dict[str, Any]], None],
    ) -> TemplateResponse | None:
        """Show ``form_class`` for the selection; once it validates, ``perform`` the action."""
        if "apply" in request.POST:
            form = form_class(request.POST)
            if form.is_valid():
                perform(form.cleaned_data)
                return None
        else:
            form = form_class()
        return action_form_response(self, request, queryset, form, title)


def action_form_response(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    form: ActionForm,
    title: StrOrPromise,
) -> TemplateResponse:
    """The intermediate page of an action: ``form`` plus the selection, posted back to the changelist."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "objects": list(queryset[:100]),
        "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action": form.action_name,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "opts": model_admin.opts,
        "media": model_admin.media + form.media,
    }
    return TemplateResponse(request, "django_webhooks/admin/action_form.html", context)

"""Event catalog admin: names, descriptions, JSON Schemas and examples; send an example to a subscription."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..catalog import FIRST_VERSION, known_event_types
from ..delivery import operations
from ..delivery.operations import describe_attempt
from ..models import EventType
from .common import pretty_json
from .forms import EventTypeAdminForm, SendExampleForm
from .subscriptions import action_form_response


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    form = EventTypeAdminForm
    list_display = ["name", "description", "current_version", "thin", "archived", "updated_at"]
    list_filter = ["archived", "thin"]
    search_fields = ["name", "description"]
    actions = ["send_example"]
    readonly_fields = ["example_preview", "versions_summary", "created_at", "updated_at"]
    fields = [
        "name",
        "description",
        "schema",
        "example",
        "example_preview",
        "versions_summary",
        "thin",
        "archived",
        "created_at",
        "updated_at",
    ]

    @admin.display(description=_("example as sent"))
    def example_preview(self, obj: EventType) -> str:
        return pretty_json(self.example_of(obj))

    @admin.display(description=_("version"))
    def current_version(self, obj: EventType) -> int:
        return (known_event_types().get(obj.name) or {}).get("version", FIRST_VERSION)

    @admin.display(description=_("versions"))
    def versions_summary(self, obj: EventType) -> str:
        """Every version subscriptions may pin (declared in ``EVENT_TYPES``: converters are code)."""
        versions = (known_event_types().get(obj.name) or {}).get("versions") or []
        if len(versions) <= 1:
            return gettext("Version %(version)s only (declare older versions in EVENT_TYPES).") % {
                "version": versions[0]["version"] if versions else FIRST_VERSION
            }
        return format_html_join(
            "",
            "<p><strong>{}</strong>{}</p>{}",
            (
                (
                    f"v{entry['version']}" + (gettext(" (current)") if index == len(versions) - 1 else ""),
                    f": {entry['description']}" if entry["description"] else "",
                    pretty_json(entry["schema"]) if entry["schema"] is not None else "",
                )
                for index, entry in enumerate(versions)
            ),
        )

    @staticmethod
    def example_of(event_type: EventType) -> Any:
        """The row's example, else the one declared in ``EVENT_TYPES``, else an empty object."""
        if event_type.example is not None:
            return event_type.example
        declared = known_event_types().get(event_type.name) or {}
        return declared.get("example") if declared.get("example") is not None else {}

    @admin.action(description=_("Send the example to a subscription…"), permissions=["change"])
    def send_example(self, request: HttpRequest, queryset: QuerySet) -> TemplateResponse | None:
        if "apply" in request.POST:
            form = SendExampleForm(request.POST)
            if form.is_valid():
                subscription = form.cleaned_data["subscription"]
                for event_type in queryset:
                    attempt = operations.send_test_event(
                        subscription, event_type=event_type.name, data=self.example_of(event_type)
                    )
                    self.message_user(
                        request,
                        format_html(
                            gettext(
                                'Example of {} sent to #{} {}: <strong>{}</strong>. <a href="{}">View the delivery</a>.'
                            ),
                            event_type.name,
                            subscription.pk,
                            subscription.url,
                            describe_attempt(attempt),
                            reverse("admin:django_webhooks_delivery_change", args=[attempt.delivery_id]),
                        ),
                        messages.SUCCESS if attempt.succeeded else messages.ERROR,
                    )
                return None
        else:
            form = SendExampleForm()
        return action_form_response(self, request, queryset, form, _("Send the example to a subscription"))

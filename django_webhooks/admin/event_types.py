"""Event catalog admin: names, descriptions, JSON Schemas and examples; send an example to a subscription."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..catalog import known_event_types
from ..delivery import operations
from ..models import EventType
from .common import pretty_json
from .forms import EventTypeAdminForm, SendExampleForm
from .subscriptions import action_form_response, describe_attempt


@admin.register(EventType)
class EventTypeAdmin(admin.ModelAdmin):
    form = EventTypeAdminForm
    list_display = ["name", "description", "thin", "archived", "updated_at"]
    list_filter = ["archived", "thin"]
    search_fields = ["name", "description"]
    actions = ["send_example"]
    readonly_fields = ["example_preview", "created_at", "updated_at"]
    fields = [
        "name",
        "description",
        "schema",
        "example",
        "example_preview",
        "thin",
        "archived",
        "created_at",
        "updated_at",
    ]

    @admin.display(description=_("example as sent"))
    def example_preview(self, obj: EventType) -> str:
        return pretty_json(self.example_of(obj))

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

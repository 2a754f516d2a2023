"""The portal's forms. Each validates through the API's serializer for the same action, so a
customer meets the same rules (and messages) in the portal as in the API."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers as drf

from .. import catalog
from ..api.serializers import (
    DisableSerializer,
    RecoverSerializer,
    SubscriptionSerializer,
    TestEventSerializer,
)
from ..delivery.operations import TEST_EVENT_TYPE
from ..models import DeliveryStatus, PayloadFormat, Subscription


def flat_messages(detail: Any) -> list[str]:
    """Every message of a DRF error detail (lists, dicts of entries), as text."""
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in flat_messages(value)]
    if isinstance(detail, list | tuple):
        return [message for value in detail for message in flat_messages(value)]
    return [str(detail)]


def form_errors(form: forms.Form) -> str:
    """Every error message of ``form``, in one line (for a message after a redirect)."""
    return " ".join(str(message) for errors in form.errors.values() for message in errors)


class SerializerForm(forms.Form):
    """A form whose :meth:`clean` hands its data to a DRF serializer and shows the serializer's errors."""

    #: Serializer field -> form field its errors are shown on (others: on the field of that name, else the form).
    error_fields: dict[str, str] = {}

    def serializer_data(self) -> dict[str, Any]:
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

    def make_serializer(self, data: dict[str, Any]) -> drf.Serializer:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.errors:
            return cleaned
        self.serializer = self.make_serializer(self.serializer_data())
        if not self.serializer.is_valid():
            for name, detail in self.serializer.errors.items():
                target = self.error_fields.get(name, name)
                for message in flat_messages(detail):
                    self.add_error(target if target in self.fields else None, message)
        return cleaned

    @property
    def validated_data(self) -> dict[str, Any]:
        return dict(self.serializer.validated_data)


def catalog_choices(keep: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Event types a customer may pick: the active catalog, and archived ones the endpoint already has."""
    return [
        (name, name)
        for name, spec in catalog.known_event_types().items()
        if (not spec["archived"] or name in keep) and not catalog.is_pattern(name)
    ]


class SubscriptionForm(SerializerForm):
    """Create or change an endpoint, validated by the API's :class:`SubscriptionSerializer`."""

    url = forms.CharField(
        label=_("Endpoint URL"),
        max_length=2000,
        widget=forms.URLInput(attrs={"placeholder": "https://example.com/webhooks", "autocomplete": "url"}),
        help_text=_("The https URL that receives the webhooks."),
    )
    description = forms.CharField(
        label=_("Description"),
        max_length=255,
        required=False,
        help_text=_("A note for yourself, e.g. which system receives these webhooks."),
    )
    event_types = forms.MultipleChoiceField(
        label=_("Event types"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("The events this endpoint receives. See the event catalog for what each one holds."),
    )
    patterns = forms.CharField(
        label=_("Patterns"),
        required=False,
        max_length=2000,
        help_text=_("Optional, separated by spaces: order.* for every order event, * for every event."),
    )
    payload_format = forms.ChoiceField(label=_("Payload format"), choices=PayloadFormat.choices)
    headers = forms.CharField(
        label=_("Extra headers"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "X-Team: billing"}),
        help_text=_("Sent with every request, one per line: Name: value."),
    )
    filters = forms.CharField(
        label=_("Filters"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": '{"status": "paid"}'}),
        help_text=_('Optional JSON object: only events whose data matches every entry, e.g. {"status": "paid"}.'),
    )

    error_fields = {"event_versions": "event_types"}

    def __init__(self, *args: Any, instance: Subscription | None = None, **kwargs: Any) -> None:
        self.instance = instance
        if instance is not None and "initial" not in kwargs:
            names = set(dict(catalog_choices(instance.event_types)))
            kwargs["initial"] = {
                "url": instance.url,
                "description": instance.description,
                "event_types": [entry for entry in instance.event_types if entry in names],
                "patterns": " ".join(entry for entry in instance.event_types if entry not in names),
                "payload_format": instance.payload_format,
                "headers": "\n".join(f"{name}: {value}" for name, value in instance.headers.items()),
                "filters": json.dumps(instance.filters) if instance.filters else "",
            }
        super().__init__(*args, **kwargs)
        field = self.fields["event_types"]
        assert isinstance(field, forms.MultipleChoiceField)
        field.choices = catalog_choices(instance.event_types if instance is not None else ())

    def clean_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        for number, line in enumerate(self.cleaned_data["headers"].splitlines(), start=1):
            if not line.strip():
                continue
            name, colon, value = line.partition(":")
            if not colon or not name.strip():
                raise forms.ValidationError(
                    _("Line %(number)d is not Name: value."), code="invalid", params={"number": number}
                )
            headers[name.strip()] = value.strip()
        return headers

    def clean_filters(self) -> dict[str, Any]:
        text = self.cleaned_data["filters"].strip()
        if not text:
            return {}
        try:
            value = json.loads(text)
        except ValueError:
            raise forms.ValidationError(_("Not valid JSON."), code="invalid") from None
        if not isinstance(value, dict):
            raise forms.ValidationError(_('A JSON object, e.g. {"status": "paid"}.'), code="invalid")
        return value

    def serializer_data(self) -> dict[str, Any]:
        data = self.cleaned_data
        entries = [*data.get("event_types", []), *data.get("patterns", "").replace(",", " ").split()]
        return {
            "url": data["url"],
            "description": data.get("description", ""),
            "event_types": entries,
            "payload_format": data["payload_format"],
            "headers": data.get("headers", {}),
            "filters": data.get("filters", {}),
        }

    def make_serializer(self, data: dict[str, Any]) -> drf.Serializer:
        return SubscriptionSerializer(self.instance, data=data, partial=self.instance is not None)

    def save(self, owner_id: str) -> Subscription:
        """Create the endpoint for ``owner_id`` (with a generated secret) or save the changes."""
        if self.instance is None:
            return self.serializer.save(owner_id=owner_id)
        return self.serializer.save()


class DisableForm(SerializerForm):
    reason = forms.CharField(
        label=_("Reason"), max_length=255, required=False, help_text=_("Optional: why you disable this endpoint.")
    )

    def make_serializer(self, data: dict[str, Any]) -> drf.Serializer:
        return DisableSerializer(data=data)


class RecoverForm(SerializerForm):
    since = forms.DateTimeField(
        label=_("Failed since"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        help_text=_("Every failed or exhausted delivery created since this time is sent again."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("initial", {"since": timezone.localtime() - timedelta(days=1)})
        super().__init__(*args, **kwargs)

    def serializer_data(self) -> dict[str, Any]:
        return {"since": self.cleaned_data["since"].isoformat()}

    def make_serializer(self, data: dict[str, Any]) -> drf.Serializer:
        return RecoverSerializer(data=data)


class TestEventForm(SerializerForm):
    event_type = forms.ChoiceField(
        label=_("Event type"),
        help_text=_("The test event is sent now, with the type's example data, and shows in the delivery log."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["event_type"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(TEST_EVENT_TYPE, TEST_EVENT_TYPE), *catalog_choices()]

    def make_serializer(self, data: dict[str, Any]) -> drf.Serializer:
        return TestEventSerializer(data=data)


class DeliveryFilterForm(forms.Form):
    """The delivery log's filters; every field is optional."""

    q = forms.CharField(
        label=_("Search"),
        required=False,
        max_length=500,
        widget=forms.SearchInput(attrs={"placeholder": "msg_… / 123"}),
        help_text=_("A message id (msg_…, the webhook-id header) or the start of one, or an event id."),
    )
    status = forms.ChoiceField(label=_("Status"), required=False)
    event_type = forms.ChoiceField(label=_("Event type"), required=False)
    endpoint = forms.TypedChoiceField(label=_("Endpoint"), required=False, coerce=int, empty_value=None)
    since = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label=_("Until"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, endpoints: list[Subscription], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        every = [("", _("any"))]
        choices: dict[str, list[Any]] = {
            "status": every + list(DeliveryStatus.choices),
            "event_type": every + [(TEST_EVENT_TYPE, TEST_EVENT_TYPE), *catalog_choices()],
            "endpoint": every + [(s.pk, s.description or s.url) for s in endpoints],
        }
        for name, options in choices.items():
            field = self.fields[name]
            assert isinstance(field, forms.ChoiceField)
            field.choices = options

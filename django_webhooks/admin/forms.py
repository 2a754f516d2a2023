"""Admin forms: subscriptions (target URL, event types, headers) and the actions' intermediate forms."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..catalog import (
    json_schema_problem,
    pin_event_versions,
    published_event_types,
    schema_errors,
    validate_event_versions,
    validate_subscribed_event_types,
)
from ..delivery.headers import validate_custom_headers
from ..delivery.targets import target_validator
from ..models import AuthMethod, EventType, OAuthClientAuth, PayloadFormat, SignatureScheme, Subscription
from ..receiver_auth import PLAIN_FIELDS, SECRET_FIELDS, auth_problems

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def _split_event_types(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(item).strip() for item in value if str(item).strip()]
    return [item for item in re.split(r"[\s,]+", value or "") if item]


class EventTypesField(forms.Field):
    """Event type names and patterns, one per line (or comma separated), stored as a list."""

    widget = forms.Textarea(attrs={"rows": 4, "cols": 50})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value: Any) -> list[str]:
        return list(dict.fromkeys(_split_event_types(value)))

    def validate(self, value: list[str]) -> None:
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")


#: The admin form's name of each receiver auth setting (``auth_`` + its name).
AUTH_FORM_PREFIX = "auth_"


def _auth_text(label: StrOrPromise, help_text: StrOrPromise = "", *, pem: bool = False) -> forms.CharField:
    widget = forms.Textarea(attrs={"rows": 4, "cols": 64}) if pem else forms.TextInput(attrs={"size": 60})
    return forms.CharField(label=label, help_text=help_text, required=False, strip=not pem, widget=widget)


class WriteOnlyTextarea(forms.Textarea):
    """A textarea that is never rendered with a value, not even the one just posted (a form shown
    again with errors): what :class:`~django.forms.PasswordInput` does for one-line secrets."""

    def format_value(self, value: Any) -> None:
        return None


def _auth_secret(label: StrOrPromise, help_text: StrOrPromise, *, pem: bool = False) -> forms.CharField:
    """A write-only field: never rendered with a value; empty keeps the stored secret."""
    widget = (
        WriteOnlyTextarea(attrs={"rows": 4, "cols": 64, "autocomplete": "off"})
        if pem
        else forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"})
    )
    return forms.CharField(label=label, help_text=help_text, required=False, strip=False, widget=widget)


class ReceiverAuthFormMixin(forms.Form):
    """The receiver authentication settings on the subscription form (:mod:`django_webhooks.receiver_auth`).

    Secret fields are never filled in: leave one empty to keep the stored secret, type a new
    one to replace it. The messages of :func:`~django_webhooks.receiver_auth.auth_problems` are
    shown on their fields."""

    auth_method = forms.ChoiceField(
        label=_("Authentication"), choices=AuthMethod.choices, required=False, initial=AuthMethod.NONE
    )
    auth_username = _auth_text(_("User name"), _("HTTP Basic."))
    auth_password = _auth_secret(_("Password"), _("HTTP Basic. Leave empty to keep the stored one."))
    auth_header_name = _auth_text(_("API key header"), _("The header that carries the API key, e.g. X-Api-Key."))
    auth_token = _auth_secret(_("Token or API key"), _("bearer and API key. Leave empty to keep the stored one."))
    auth_token_url = _auth_text(_("Token URL"), _("OAuth2: the receiver's token endpoint (checked like the URL)."))
    auth_client_id = _auth_text(_("Client id"), _("OAuth2."))
    auth_client_auth = forms.ChoiceField(
        label=_("Client authentication"),
        choices=OAuthClientAuth.choices,
        required=False,
        initial=OAuthClientAuth.CLIENT_SECRET_BASIC,
    )
    auth_client_secret = _auth_secret(_("Client secret"), _("OAuth2. Leave empty to keep the stored one."))
    auth_private_key = _auth_secret(
        _("Client assertion key"), _("private_key_jwt: PEM private key. Leave empty to keep the stored one."), pem=True
    )
    auth_key_id = _auth_text(_("Key id (kid)"), _("private_key_jwt."))
    auth_scope = _auth_text(_("Scope"), _("OAuth2, space-separated."))
    auth_audience = _auth_text(_("Audience"), _("OAuth2, if the token endpoint wants one."))
    auth_resource = _auth_text(_("Resource"), _("OAuth2 resource indicator (RFC 8707), if wanted."))
    auth_client_certificate = _auth_text(
        _("Client certificate"), _("Mutual TLS: PEM certificate (and intermediates). Empty for none."), pem=True
    )
    auth_client_key = _auth_secret(
        _("Client certificate key"), _("Mutual TLS: PEM private key. Leave empty to keep the stored one."), pem=True
    )
    auth_ca_bundle = _auth_text(
        _("CA bundle"), _("PEM certificates trusted for this endpoint instead of the public ones."), pem=True
    )

    def initial_auth(self, subscription: Subscription | None) -> None:
        auth = getattr(subscription, "receiver_auth", None) if subscription is not None and subscription.pk else None
        if auth is not None:
            for name in PLAIN_FIELDS:
                self.initial[AUTH_FORM_PREFIX + name] = getattr(auth, name)

    def auth_values(self) -> dict[str, Any]:
        """The settings to store (``configure_auth``'s arguments): plain ones, and the secrets typed in."""
        cleaned = self.cleaned_data
        values = {name: cleaned.get(AUTH_FORM_PREFIX + name) or "" for name in PLAIN_FIELDS}
        values["method"] = values["method"] or AuthMethod.NONE
        values["client_auth"] = values["client_auth"] or OAuthClientAuth.CLIENT_SECRET_BASIC
        values.update(
            {name: cleaned[AUTH_FORM_PREFIX + name] for name in SECRET_FIELDS if cleaned.get(AUTH_FORM_PREFIX + name)}
        )
        return values

    def auth_changed(self) -> bool:
        return any(name.startswith(AUTH_FORM_PREFIX) for name in self.changed_data)

    def clean_auth(self, subscription: Subscription | None) -> None:
        current = getattr(subscription, "receiver_auth", None) if subscription is not None and subscription.pk else None
        if current is None and not self.auth_changed():
            return
        for name, messages in auth_problems(self.auth_values(), current).items():
            for message in messages:
                self.add_error(AUTH_FORM_PREFIX + name, message)


class SubscriptionAdminForm(ReceiverAuthFormMixin, forms.ModelForm):
    """Validates the target against the SSRF guard, event types against the catalog and the headers."""

    url = forms.URLField(
        label=_("URL"),
        max_length=2000,
        assume_scheme="https",
        widget=forms.URLInput(attrs={"class": "vURLField"}),
    )
    event_types = EventTypesField(
        label=_("Event types"),
        help_text=_("One per line: names from the catalog, or patterns such as order.* or *."),
    )
    payload_format = forms.TypedChoiceField(
        label=_("Payload format"),
        choices=PayloadFormat.choices,
        required=False,
        empty_value=PayloadFormat.STANDARD,
        initial=PayloadFormat.STANDARD,
        help_text=_("Standard Webhooks envelope (the default), or CloudEvents 1.0 in structured or binary mode."),
    )
    signature_scheme = forms.TypedChoiceField(
        label=_("Signature scheme"),
        choices=SignatureScheme.choices,
        required=False,
        empty_value=SignatureScheme.V1,
        initial=SignatureScheme.V1,
        help_text=_(
            "v1 (the default) signs with the shared secret; v1a with an ed25519 key whose public key receivers "
            "verify with; both sends the two while receivers move to v1a. v1a makes a key pair when saved."
        ),
    )

    class Meta:
        model = Subscription
        fields = [
            "owner_id",
            "url",
            "description",
            "event_types",
            "filters",
            "headers",
            "ordered",
            "max_in_flight",
            "rate_limit",
            "send_traceparent",
            "verify_endpoint",
            "payload_format",
            "event_versions",
            "signature_scheme",
        ]
        help_texts = {
            "owner_id": _("Primary key of the owner; empty for a staff-managed subscription."),
            "event_versions": _(
                'The version of each event type sent, as a JSON object: {"order.created": 1}. Each type the '
                "event types select and this leaves out is pinned to its current version when saved."
            ),
            "headers": _('Extra HTTP headers as a JSON object, e.g. {"Authorization": "Bearer ..."}.'),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.initial_auth(self.instance)
        active = list(published_event_types())
        if active:
            self.fields["event_types"].help_text = _(
                "One per line: names from the catalog, or patterns such as order.* or *. Available: %(names)s."
            ) % {"names": ", ".join(active)}

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        try:
            target_validator(url)
        except ValidationError as exc:
            raise ValidationError(
                _("Webhooks cannot be sent to this URL: %(reason)s"),
                code="blocked_target",
                params={"reason": " ".join(exc.messages)},
            )
        return url

    def clean_event_types(self) -> list[str]:
        entries = self.cleaned_data["event_types"]
        validate_subscribed_event_types(entries, already=self.instance.event_types if self.instance.pk else ())
        return entries

    def clean_headers(self) -> dict[str, str]:
        headers = self.cleaned_data.get("headers") or {}
        validate_custom_headers(headers)
        return headers

    def clean_event_versions(self) -> dict[str, int]:
        pins = self.cleaned_data.get("event_versions") or {}
        validate_event_versions(pins)
        return pins

    def clean(self) -> dict[str, Any]:
        """Pin the current version of each type the event types select and the pins leave out."""
        cleaned = super().clean() or {}
        self.clean_auth(self.instance)
        if "event_types" in cleaned and "event_versions" in cleaned:
            cleaned["event_versions"] = pin_event_versions(cleaned["event_types"], cleaned["event_versions"])
        return cleaned

    def clean_filters(self) -> dict[str, Any]:
        filters = self.cleaned_data.get("filters") or {}
        if not isinstance(filters, dict):
            raise ValidationError(_("Filters must be a JSON object of field paths to values."), code="invalid_filters")
        return filters


class EventTypeAdminForm(forms.ModelForm):
    """Checks that the schema is a valid JSON Schema and that the example matches it."""

    class Meta:
        model = EventType
        fields = ["name", "description", "schema", "example", "thin", "archived"]

    def clean_schema(self) -> Any:
        schema = self.cleaned_data.get("schema")
        if schema is None:
            return schema
        problem = json_schema_problem(schema)
        if problem:
            raise ValidationError(problem, code="invalid_schema")
        return schema

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        schema, example = cleaned.get("schema"), cleaned.get("example")
        if schema is not None and example is not None and "schema" not in self.errors:
            errors = schema_errors(schema, example)
            if errors:
                self.add_error(
                    "example",
                    ValidationError(
                        _("The example does not match the schema: %(error)s"),
                        code="example_mismatch",
                        params={"error": errors[0]},
                    ),
                )
        return cleaned


class ActionForm(forms.Form):
    """Base of the intermediate forms of admin actions (carries the selection through the POST)."""

    #: The admin action this form completes; the template posts it back as ``action``.
    action_name = ""


class DisableForm(ActionForm):
    action_name = "disable_subscriptions"
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_("Shown on the subscription and sent to its owner if notifications are on."),
    )


class RecoverForm(ActionForm):
    action_name = "recover_subscriptions"
    since = forms.DateTimeField(
        label=_("Resend failed deliveries since"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"],
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["since"].help_text = _("Date and time in %(tz)s.") % {"tz": timezone.get_current_timezone_name()}

    def clean_since(self) -> datetime:
        since = self.cleaned_data["since"]
        if since > timezone.now():
            raise ValidationError(_("The date-time is in the future."), code="future")
        return since


class SendExampleForm(ActionForm):
    action_name = "send_example"
    subscription = forms.ModelChoiceField(
        label=_("Subscription"),
        queryset=Subscription.objects.order_by("-id"),  # lazy: each form gets a copy, read when shown
        help_text=_("The example is sent now, synchronously, as a test event."),
    )

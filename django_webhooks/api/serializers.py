"""Serializers of the API: what customers send and read, each field described for OpenAPI.

Every serializer derives from :class:`WebhooksSerializer` or :class:`WebhooksModelSerializer`,
so text the databases cannot store is refused with a field message: DRF's ``CharField``
refuses NUL characters and lone surrogates in every string field, and :class:`StorableJSONMixin`
applies :func:`~django_webhooks.capture.payloads.json_problems` to every free-form JSON field.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from .. import catalog, receiver_auth, secret_store
from ..capture import payloads
from ..delivery import handshake, operations, targets
from ..delivery.headers import MAX_HEADER_VALUE_LENGTH, validate_custom_headers
from ..models import (
    AuthMethod,
    Delivery,
    DeliveryAttempt,
    Event,
    OAuthClientAuth,
    PayloadFormat,
    SignatureScheme,
    Subscription,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

#: Most event types or patterns, and filter entries, one subscription may list.
MAX_EVENT_TYPES = 100
MAX_FILTERS = 20
#: Longest overlap a rotation may give the previous secret (30 days).
MAX_ROTATION_OVERLAP = 30 * 24 * 3600


def refuse_unstorable_json(value: Any) -> None:
    """A field validator: ``value`` must be JSON every database stores and every receiver parses.

    One message per problem of :func:`~django_webhooks.capture.payloads.json_problems`, each with its
    JSONPath from the field's value (``$.a[0]: contains a lone UTF-16 surrogate ...``).
    """
    problems = payloads.json_problems(value, convert=False)
    if problems:
        raise serializers.ValidationError(problems)


def holds_json(field: serializers.Field) -> bool:
    """True for a JSONField, and for a list or dict field whose items are (lists or dicts of) JSON."""
    while isinstance(field, serializers.ListField | serializers.DictField):
        field = field.child
    return isinstance(field, serializers.JSONField)


class StorableJSONMixin:
    """Adds :func:`refuse_unstorable_json` to every field of the serializer that holds free-form
    JSON, declared or mapped from a model's ``JSONField``; on a list or dict of JSON values it
    checks the whole, keys included."""

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()  # type: ignore[misc]
        for field in fields.values():
            if holds_json(field) and refuse_unstorable_json not in field.validators:
                field.validators = [*field.validators, refuse_unstorable_json]
        return fields


class WebhooksSerializer(StorableJSONMixin, serializers.Serializer):
    """Base of the API's plain serializers."""


class WebhooksModelSerializer(StorableJSONMixin, serializers.ModelSerializer):
    """Base of the API's model serializers."""


def event_type_name_field(help_text: StrOrPromise) -> serializers.RegexField:
    """An optional field holding one event type name (no patterns)."""
    return serializers.RegexField(
        catalog.EVENT_TYPE_NAME_RE,
        max_length=200,
        required=False,
        help_text=help_text,
        error_messages={"invalid": _("Not a valid event type name (dot-separated words, e.g. order.created).")},
    )


# -- event catalog ---------------------------------------------------------------------------------


class EventTypeVersionSerializer(WebhooksSerializer):
    """One version of an event type, as a subscription may pin it."""

    version = serializers.IntegerField(help_text=_("The version number: 1, 2, ..."))
    description = serializers.CharField(allow_blank=True, help_text=_("What changed in this version, if told."))
    schema = serializers.JSONField(
        allow_null=True, help_text=_("JSON Schema of the data in this version, or null when none is declared.")
    )
    example = serializers.JSONField(
        allow_null=True, help_text=_("An example of the data in this version, or null when none is declared.")
    )


class EventTypeSerializer(WebhooksSerializer):
    """One entry of the event catalog (read from a dict of :func:`catalog.known_event_types`)."""

    name = serializers.CharField(help_text=_("The event type's name, e.g. order.created."))
    description = serializers.CharField(help_text=_("What happened when an event of this type is sent."))
    schema = serializers.JSONField(
        allow_null=True, help_text=_("JSON Schema the event's data matches, or null when none is declared.")
    )
    example = serializers.JSONField(
        allow_null=True, help_text=_("An example of the event's data, or null when none is declared.")
    )
    thin = serializers.BooleanField(
        help_text=_("True when the data holds only the object's id, type and a URL to fetch it.")
    )
    version = serializers.IntegerField(
        help_text=_("The current version: new events are recorded in it, and new subscriptions pin it.")
    )
    versions = EventTypeVersionSerializer(
        many=True,
        help_text=_(
            "Every version a subscription may pin (event_versions), oldest first; the last is the current one."
        ),
    )


# -- subscriptions -----------------------------------------------------------------------------------


def _secret_field(help_text: StrOrPromise) -> serializers.CharField:
    return serializers.CharField(
        write_only=True, required=False, allow_blank=True, trim_whitespace=False, help_text=help_text
    )


class ReceiverAuthSerializer(WebhooksSerializer):
    """How requests prove to the receiver who sends them (:mod:`django_webhooks.receiver_auth`).

    Secrets are write-only: give one to set or replace it (rotation), leave it out to keep it;
    ``secrets_set`` tells which are stored."""

    method = serializers.ChoiceField(
        choices=AuthMethod.choices,
        required=False,
        error_messages={"invalid_choice": _("Use one of: none, basic, bearer, api_key, oauth2.")},
        help_text=_(
            "none; basic (HTTP Basic: username and password); bearer (Authorization: Bearer token); api_key "
            "(the token in the header header_name); oauth2 (client credentials: an access token from token_url)."
        ),
    )
    username = serializers.CharField(required=False, allow_blank=True, max_length=255, help_text=_("basic: user name."))
    password = _secret_field(_("basic: the password (write-only)."))
    token = _secret_field(_("bearer and api_key: the token or API key sent (write-only)."))
    header_name = serializers.CharField(
        required=False, allow_blank=True, max_length=100, help_text=_("api_key: the header that carries it.")
    )
    token_url = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text=_("oauth2: the receiver's token endpoint; it must pass the same checks as the subscription's URL."),
    )
    client_id = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text=_("oauth2: client id.")
    )
    client_auth = serializers.ChoiceField(
        choices=OAuthClientAuth.choices,
        required=False,
        error_messages={"invalid_choice": _("Use one of: client_secret_basic, client_secret_post, private_key_jwt.")},
        help_text=_(
            "oauth2: how the client authenticates at the token endpoint: client_secret_basic, client_secret_post, "
            "or private_key_jwt (a JWT signed with private_key, RFC 7523)."
        ),
    )
    client_secret = _secret_field(_("oauth2 with client_secret_basic or client_secret_post: the secret (write-only)."))
    private_key = _secret_field(
        _("oauth2 with private_key_jwt: the PEM private key (RSA, EC or Ed25519) signing the assertion (write-only).")
    )
    key_id = serializers.CharField(
        required=False, allow_blank=True, max_length=255, help_text=_("private_key_jwt: the kid of the key.")
    )
    scope = serializers.CharField(required=False, allow_blank=True, max_length=1000, help_text=_("oauth2: scope."))
    audience = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text=_("oauth2: audience parameter, if needed.")
    )
    resource = serializers.CharField(
        required=False, allow_blank=True, max_length=2000, help_text=_("oauth2: resource indicator (RFC 8707).")
    )
    client_certificate = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=_("Mutual TLS: the PEM client certificate (and intermediates); empty for none."),
    )
    client_key = _secret_field(_("Mutual TLS: the certificate's PEM private key, unencrypted (write-only)."))
    ca_bundle = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=_("PEM certificates trusted for the endpoint's server certificate instead of the public ones."),
    )
    mutual_tls = serializers.BooleanField(read_only=True, help_text=_("True when a client certificate is set."))
    client_certificate_expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the client certificate expires.")
    )
    secrets_set = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text=_("Which write-only secrets are stored: password, token, client_secret, private_key, client_key."),
    )

    def get_attribute(self, instance: Subscription) -> Subscription:
        return instance

    def to_representation(self, instance: Subscription) -> dict[str, Any]:
        described = receiver_auth.describe_auth(getattr(instance, "receiver_auth", None))
        return {name: described.get(name, "") for name, field in self.fields.items() if not field.write_only}

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        parent = self.parent
        subscription = parent.instance if parent is not None else None
        current = getattr(subscription, "receiver_auth", None) if isinstance(subscription, Subscription) else None
        problems = receiver_auth.auth_problems(attrs, current)
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


class SubscriptionSerializer(WebhooksModelSerializer):
    """A webhook endpoint. The signing secret is never part of it: see the ``secret`` action."""

    url = serializers.CharField(
        max_length=2000,
        help_text=_("The http(s) URL that receives the webhooks. It must be reachable on the public internet."),
        validators=[targets.target_validator],
    )
    event_types = serializers.ListField(
        child=serializers.CharField(max_length=200),
        min_length=1,
        max_length=MAX_EVENT_TYPES,
        help_text=_("Event types to receive: catalog names (order.created) or patterns (order.*, *)."),
    )
    filters = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text=_('Only events whose data matches every entry, dotted keys for nested fields: {"status": "paid"}.'),
    )
    headers = serializers.DictField(
        child=serializers.CharField(max_length=MAX_HEADER_VALUE_LENGTH, allow_blank=True),
        required=False,
        validators=[validate_custom_headers],
        help_text=_("Extra HTTP headers sent with every request (at most MAX_CUSTOM_HEADERS, no framing headers)."),
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        max_length=200,
        help_text=_(
            "Only on creation: your own signing secret (whsec_ + base64 of 24 to 64 bytes). "
            "Omit it to get a generated one."
        ),
    )
    max_in_flight = serializers.IntegerField(
        min_value=1,
        max_value=100,
        required=False,
        allow_null=True,
        help_text=_("Concurrent requests to this endpoint; null uses the server's default."),
    )
    rate_limit = serializers.IntegerField(
        min_value=1,
        max_value=100000,
        required=False,
        allow_null=True,
        help_text=_("Deliveries per second at most; null for no limit."),
    )
    payload_format = serializers.ChoiceField(
        choices=PayloadFormat.choices,
        required=False,
        # Without the input: it may hold text the response cannot carry (a lone surrogate).
        error_messages={"invalid_choice": _("Use one of: standard, cloudevents, cloudevents_binary.")},
        help_text=_(
            "standard: the Standard Webhooks envelope; cloudevents: CloudEvents 1.0 structured JSON; "
            "cloudevents_binary: the data as the body, the CloudEvents attributes as ce-* headers."
        ),
    )
    signature_scheme = serializers.ChoiceField(
        choices=SignatureScheme.choices,
        required=False,
        error_messages={"invalid_choice": _("Use one of: v1, v1a, both.")},
        help_text=_(
            "Which Standard Webhooks signatures requests carry: v1 (HMAC-SHA256 with the signing secret, the "
            "default), v1a (ed25519; receivers verify with the public keys of the signing-keys action), or both "
            "while receivers move from v1 to v1a. Choosing v1a or both makes a signing key if there is none."
        ),
    )
    auth = ReceiverAuthSerializer(
        source="receiver_auth",
        required=False,
        help_text=_(
            "How requests authenticate to your endpoint: none, HTTP Basic, a bearer token or API key header, or "
            "OAuth2 client credentials, each optionally with a TLS client certificate (mutual TLS). Secrets are "
            "write-only; send one again to rotate it."
        ),
    )
    event_versions = serializers.DictField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        validators=[catalog.validate_event_versions],
        help_text=_(
            'The version of each event type this endpoint receives: {"order.created": 1}. Each type the '
            "event types select and this leaves out is pinned to its current version, on creation and whenever "
            "event_types or event_versions change; a type added to the catalog later gets its current version."
        ),
    )
    verify_endpoint = serializers.BooleanField(
        required=False,
        help_text=_(
            "Send nothing until the endpoint answers a webhook.verification challenge, first and after every URL "
            "change. The server may require it of every subscription; see verification_state."
        ),
    )
    verification_state = serializers.SerializerMethodField(
        help_text=_(
            "not_required, pending (no answer yet), failed (the last handshake failed, see verification_error; "
            "retried at next_verification_at) or verified. Nothing is sent while pending or failed."
        )
    )
    verified_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the current URL passed the handshake; null until it has.")
    )
    verification_error = serializers.CharField(
        read_only=True, help_text=_("Why the last handshake of the current URL failed; empty otherwise.")
    )
    next_verification_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the handshake runs (again); null when none is scheduled.")
    )

    class Meta:
        model = Subscription
        fields = [
            "id",
            "url",
            "description",
            "event_types",
            "filters",
            "headers",
            "enabled",
            "disabled_reason",
            "disabled_at",
            "ordered",
            "max_in_flight",
            "rate_limit",
            "send_traceparent",
            "verify_endpoint",
            "verification_state",
            "verified_at",
            "verification_error",
            "next_verification_at",
            "payload_format",
            "event_versions",
            "signature_scheme",
            "auth",
            "secret",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["enabled", "disabled_reason", "disabled_at", "created_at", "updated_at"]
        extra_kwargs = {
            "id": {"help_text": _("The subscription's id.")},
            "description": {"help_text": _("A note for yourself, e.g. which system receives these webhooks.")},
            "enabled": {"help_text": _("False when disabled by you or after failing too long; see disabled_reason.")},
            "disabled_reason": {"help_text": _("Why the subscription was disabled; empty when enabled.")},
            "disabled_at": {"help_text": _("When the subscription was disabled; null when enabled.")},
            "ordered": {"help_text": _("Deliver strictly in event order; each delivery waits for the one before.")},
            "created_at": {"help_text": _("When the subscription was created.")},
            "updated_at": {"help_text": _("When the subscription last changed.")},
        }

    @extend_schema_field(serializers.ChoiceField(choices=handshake.VerificationState.CHOICES))
    def get_verification_state(self, subscription: Subscription) -> str:
        return handshake.verification_state(subscription)

    def validate_event_types(self, value: list[str]) -> list[str]:
        catalog.validate_subscribed_event_types(value, already=self.instance.event_types if self.instance else ())
        if len(set(value)) != len(value):
            raise serializers.ValidationError(_("Each event type may be listed once."))
        return value

    def validate_filters(self, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_FILTERS:
            raise serializers.ValidationError(_("At most %(n)d filter entries.") % {"n": MAX_FILTERS})
        if any(not key or len(key) > 200 for key in value):
            raise serializers.ValidationError(_("Filter keys are field names of 1 to 200 characters."))
        return value

    def validate_secret(self, value: str) -> str:
        if self.instance is not None:
            raise serializers.ValidationError(_("Change the secret with the rotate-secret action."))
        secret_store.validate_secret(value)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Pin the current version of each selected type left without a pin (:func:`catalog.pin_event_versions`):
        every one when the pins are given or the subscription is new, else those the new entries add."""
        instance = self.instance
        previous = instance.event_types if instance is not None and "event_versions" not in attrs else []
        entries = attrs.get("event_types", instance.event_types if instance is not None else [])
        pins = attrs.get("event_versions", instance.event_versions if instance is not None else {})
        if instance is None or "event_types" in attrs or "event_versions" in attrs:
            attrs["event_versions"] = catalog.pin_event_versions(entries, pins, previous=previous)
        return attrs

    def create(self, validated_data: dict[str, Any]) -> Subscription:
        """A new subscription gets a generated secret when it is saved; ``secret`` replaces it."""
        secret = validated_data.pop("secret", None)
        auth = validated_data.pop("receiver_auth", None)
        with transaction.atomic():
            subscription = super().create(validated_data)
            if secret is not None:
                secret_store.create_secret(subscription, secret)
            if auth:
                receiver_auth.configure_auth(subscription, **auth)
        return subscription

    def update(self, instance: Subscription, validated_data: dict[str, Any]) -> Subscription:
        """``auth`` changes the fields it gives (a secret given replaces the stored one)."""
        auth = validated_data.pop("receiver_auth", None)
        with transaction.atomic():
            subscription = super().update(instance, validated_data)
            if auth:
                receiver_auth.configure_auth(subscription, **auth)
                subscription.refresh_from_db()
        return subscription


class DisableSerializer(WebhooksSerializer):
    reason = serializers.CharField(
        max_length=255,
        required=False,
        allow_blank=True,
        help_text=_("Why you disable the subscription; shown as disabled_reason."),
    )


class SecretSerializer(WebhooksSerializer):
    secret = serializers.CharField(help_text=_("The current signing secret (whsec_...). Keep it private."))


class RotateSecretSerializer(WebhooksSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_ROTATION_OVERLAP,
        required=False,
        help_text=_("Seconds the previous secret keeps signing next to the new one; default is the server's."),
    )
    secret = serializers.CharField(
        required=False,
        max_length=200,
        help_text=_("Your own new secret (whsec_ + base64 of 24 to 64 bytes); omit it to get a generated one."),
        validators=[secret_store.validate_secret],
    )


class RotatedSecretSerializer(WebhooksSerializer):
    secret = serializers.CharField(help_text=_("The new current signing secret (whsec_...)."))
    previous_secrets_expire_at = serializers.DateTimeField(
        help_text=_("Until then requests carry a signature with the previous secret too.")
    )


class TestEventSerializer(WebhooksSerializer):
    event_type = event_type_name_field(
        _("webhook.test (the default) or an event type of the catalog, to try your receiver on it.")
    )
    # DRF's metaclass moves declared fields out of the class, so this does not shadow ``Serializer.data``;
    # the stubs cannot tell (typeddjango/djangorestframework-stubs#78), and the API field is named data.
    data = serializers.DictField(  # type: ignore[assignment]
        child=serializers.JSONField(),
        required=False,
        help_text=_("The test event's data; default the event type's example, or a small test object."),
    )

    def validate_event_type(self, value: str) -> str:
        if value == operations.TEST_EVENT_TYPE:
            return value
        catalog.validate_active_event_type(value)
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs.setdefault("event_type", operations.TEST_EVENT_TYPE)
        if "data" not in attrs:
            example = (catalog.known_event_types().get(attrs["event_type"]) or {}).get("example")
            if isinstance(example, dict):
                attrs["data"] = example
        return attrs


class RecoverSerializer(WebhooksSerializer):
    since = serializers.DateTimeField(
        help_text=_("Send again every failed or exhausted delivery of this subscription created since this time.")
    )

    def validate_since(self, value: datetime) -> datetime:
        if value > timezone.now():
            raise serializers.ValidationError(_("This time is in the future."))
        return value


class RecoverResultSerializer(WebhooksSerializer):
    recovered = serializers.IntegerField(help_text=_("How many deliveries were queued again."))


class HealthSerializer(WebhooksSerializer):
    """The figures of :func:`django_webhooks.delivery.health.subscription_health`."""

    last_success_at = serializers.DateTimeField(allow_null=True, help_text=_("Time of the last successful attempt."))
    last_failure_at = serializers.DateTimeField(allow_null=True, help_text=_("Time of the last failed attempt."))
    consecutive_failures = serializers.IntegerField(help_text=_("Failed attempts since the last success."))
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text=_("Start of the current run of failures; null when the last attempt succeeded.")
    )
    circuit_state = serializers.ChoiceField(
        choices=[("open", "open"), ("closed", "closed")],
        help_text=_("open: deliveries wait for the endpoint to recover; closed: deliveries go out."),
    )
    circuit_open_until = serializers.DateTimeField(allow_null=True, help_text=_("When an open circuit is retried."))
    attempts_24h = serializers.IntegerField(help_text=_("Attempts in the last 24 hours."))
    success_rate_24h = serializers.FloatField(
        allow_null=True, help_text=_("Share of successful attempts in the last 24 hours (0 to 1); null without any.")
    )
    p50_ms = serializers.FloatField(allow_null=True, help_text=_("Median response time in ms, last 24 hours."))
    p95_ms = serializers.FloatField(allow_null=True, help_text=_("95th percentile response time in ms, last 24 hours."))
    last_status = serializers.IntegerField(allow_null=True, help_text=_("HTTP status of the last attempt."))
    last_error_class = serializers.CharField(
        allow_null=True, help_text=_("Kind of error of the last attempt (timeout, dns, http_status...), if any.")
    )


# -- events and deliveries ---------------------------------------------------------------------------


class EventSerializer(WebhooksModelSerializer):
    # Not ``Serializer.data``: see TestEventSerializer.data.
    data = serializers.JSONField(  # type: ignore[assignment]
        source="payload", help_text=_("The event's data, as sent in the body's data.")
    )

    class Meta:
        model = Event
        fields = ["id", "event_type", "data", "idempotency_key", "created_at"]
        extra_kwargs = {
            "id": {"help_text": _("The event's id.")},
            "event_type": {"help_text": _("The event type's name.")},
            "idempotency_key": {"help_text": _("The key the event was recorded with, to avoid duplicates.")},
            "created_at": {"help_text": _("When the event happened.")},
        }


class EventSummarySerializer(WebhooksModelSerializer):
    class Meta:
        model = Event
        fields = ["id", "event_type", "created_at"]
        extra_kwargs = {
            "id": {"help_text": _("The event's id.")},
            "event_type": {"help_text": _("The event type's name.")},
            "created_at": {"help_text": _("When the event happened.")},
        }


class DeliveryAttemptSerializer(WebhooksModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = [
            "id",
            "attempt_number",
            "created_at",
            "url",
            "request_headers",
            "response_status",
            "response_headers",
            "response_body",
            "duration_ms",
            "error_class",
            "error_message",
            "succeeded",
        ]
        extra_kwargs = {
            "id": {"help_text": _("The attempt's id.")},
            "attempt_number": {"help_text": _("1 for the first request of a delivery, 2 for the first retry...")},
            "created_at": {"help_text": _("When the request was sent.")},
            "url": {"help_text": _("The URL the request went to.")},
            "request_headers": {
                "help_text": _("The request's headers; signature values and credentials are redacted.")
            },
            "response_status": {"help_text": _("HTTP status of the response; null when none came.")},
            "response_headers": {"help_text": _("The response's headers.")},
            "response_body": {"help_text": _("The start of the response's body.")},
            "duration_ms": {"help_text": _("Milliseconds from sending to the end of the response.")},
            "error_class": {
                "help_text": _("Kind of failure (timeout, connection, dns, http_status...); empty on success.")
            },
            "error_message": {"help_text": _("What went wrong, in words.")},
            "succeeded": {"help_text": _("True when the endpoint answered 2xx.")},
        }


class DeliverySerializer(WebhooksModelSerializer):
    event = EventSummarySerializer(read_only=True, help_text=_("The event delivered."))
    attempts = DeliveryAttemptSerializer(
        source="delivery_attempts", many=True, read_only=True, help_text=_("Every request made, oldest first.")
    )
    attempt_count = serializers.IntegerField(source="attempts", read_only=True, help_text=_("Requests made so far."))

    class Meta:
        model = Delivery
        fields = [
            "id",
            "message_id",
            "event",
            "subscription",
            "status",
            "attempt_count",
            "next_attempt_at",
            "last_status_code",
            "last_error",
            "created_at",
            "completed_at",
            "attempts",
        ]
        read_only_fields = fields
        extra_kwargs = {
            "id": {"help_text": _("The delivery's id.")},
            "message_id": {"help_text": _("The webhook-id header: the same on every retry; dedupe on it.")},
            "subscription": {"help_text": _("Id of the subscription the event went to.")},
            "status": {"help_text": _("Where the delivery stands.")},
            "next_attempt_at": {"help_text": _("When the next attempt is due; null when none is planned.")},
            "last_status_code": {"help_text": _("HTTP status of the last attempt.")},
            "last_error": {"help_text": _("The last attempt's error, if any.")},
            "created_at": {"help_text": _("When the delivery was created.")},
            "completed_at": {"help_text": _("When the delivery reached a final status.")},
        }

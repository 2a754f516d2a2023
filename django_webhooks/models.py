"""Data model: the event catalog, subscriptions, events, deliveries and their attempts.

Owners are stored as ``owner_id``, the string primary key of an instance of the model named
by ``DJANGO_WEBHOOKS["OWNER_MODEL"]`` (default ``AUTH_USER_MODEL``), so a project can own
subscriptions by user, team or account without forking our migrations. ``owner_id`` NULL
means staff-managed (subscriptions) or owner-less (events). See docs/ownership.md.
"""

from __future__ import annotations

import secrets as _secrets

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

# The field validator lives with the other event type rules; migrations name it here.
from .catalog import validate_event_type_name


def new_message_id() -> str:
    """A Standard Webhooks message id: stable for a delivery across every retry."""
    return "msg_" + _secrets.token_urlsafe(18).replace("-", "A").replace("_", "B")


def new_key_set_id() -> str:
    """The unguessable id in the public URL of a subscription's key set (its v1a public keys)."""
    return "ks_" + _secrets.token_urlsafe(24)


def empty_list() -> list:
    return []


def empty_dict() -> dict:
    return {}


class EventType(models.Model):
    """An entry of the event catalog customers subscribe to and build receivers against."""

    id = models.BigAutoField(primary_key=True)
    name = models.CharField(max_length=200, unique=True, validators=[validate_event_type_name])
    description = models.TextField(blank=True)
    schema = models.JSONField(null=True, blank=True, help_text=_("JSON Schema the event's data must match."))
    example = models.JSONField(null=True, blank=True, help_text=_("An example of the event's data."))
    thin = models.BooleanField(default=False, help_text=_("Send only the object's id, type and a URL to fetch it."))
    archived = models.BooleanField(default=False, help_text=_("No new subscriptions or events."))
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("event type")

    def __str__(self) -> str:
        return self.name


class PayloadFormat(models.TextChoices):
    """How a subscription's requests carry an event (:mod:`django_webhooks.delivery.formats`)."""

    STANDARD = "standard", _("Standard Webhooks envelope")
    CLOUDEVENTS = "cloudevents", _("CloudEvents 1.0, structured JSON")
    CLOUDEVENTS_BINARY = "cloudevents_binary", _("CloudEvents 1.0, binary mode (ce-* headers)")


class SignatureScheme(models.TextChoices):
    """Which Standard Webhooks signatures a subscription's requests carry (:mod:`django_webhooks.signing`)."""

    V1 = "v1", _("v1: HMAC-SHA256 with the signing secret")
    V1A = "v1a", _("v1a: ed25519 with the signing key, verified with its public key")
    BOTH = "both", _("v1 and v1a, while receivers move to v1a")


class Subscription(models.Model):
    """An endpoint that receives an owner's events of the types it asks for."""

    id = models.BigAutoField(primary_key=True)
    owner_id = models.CharField(max_length=64, null=True, blank=True, db_index=True)
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=255, blank=True)
    event_types = models.JSONField(
        default=empty_list, help_text=_("Event type names or patterns: order.created, order.*, *.")
    )
    filters = models.JSONField(
        default=empty_dict,
        blank=True,
        help_text=_('Only events whose data matches every entry: {"status": "paid", "customer.country": "NL"}.'),
    )
    headers = models.JSONField(
        default=empty_dict, blank=True, help_text=_("Extra HTTP headers sent with every request.")
    )
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=255, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    ordered = models.BooleanField(
        default=False, help_text=_("Deliver strictly in event order; each waits for the one before.")
    )
    max_in_flight = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text=_("Concurrent requests to this endpoint; empty uses the setting.")
    )
    rate_limit = models.PositiveIntegerField(null=True, blank=True, help_text=_("Deliveries per second at most."))
    send_traceparent = models.BooleanField(
        default=False, help_text=_("Send the W3C traceparent header, linking the receiver's trace to ours.")
    )
    payload_format = models.CharField(
        max_length=32,
        choices=PayloadFormat.choices,
        default=PayloadFormat.STANDARD,
        db_default=PayloadFormat.STANDARD,
        help_text=_("How each request carries the event: Standard Webhooks envelope or CloudEvents 1.0."),
    )
    event_versions = models.JSONField(
        default=empty_dict,
        blank=True,
        help_text=_(
            'The version of each event type this endpoint receives: {"order.created": 1}. '
            "A type without one gets its current version."
        ),
    )
    signature_scheme = models.CharField(
        max_length=8,
        choices=SignatureScheme.choices,
        default=SignatureScheme.V1,
        db_default=SignatureScheme.V1,
        help_text=_(
            "v1 signs with the shared secret; v1a with an ed25519 key whose public key receivers verify with; "
            "both sends the two while receivers move over."
        ),
    )
    #: Addresses the public key set of the subscription's v1a keys (``api/.../key-sets/<id>/``),
    #: so that the URL tells nothing about the subscription or its owner.
    key_set_id = models.CharField(max_length=40, unique=True, default=new_key_set_id, editable=False)
    # The endpoint handshake (django_webhooks.delivery.handshake): nothing is sent while it is
    # required and ``verified_url`` is not the subscription's URL.
    verify_endpoint = models.BooleanField(
        default=False,
        help_text=_(
            "Send nothing until the endpoint answers a verification challenge, first and after every URL "
            "change (every subscription does when REQUIRE_ENDPOINT_VERIFICATION is on)."
        ),
    )
    verified_url = models.URLField(
        max_length=2000,
        blank=True,
        default="",
        editable=False,
        help_text=_("The URL that answered the verification challenge; emptied when the URL changes."),
    )
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    verification_error = models.CharField(max_length=255, blank=True, default="", editable=False)
    #: Failed handshakes since the URL last changed (the retry backoff counts them).
    verification_failures = models.PositiveIntegerField(default=0, editable=False)
    #: When the handshake runs (again); None when none is scheduled.
    next_verification_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Endpoint health, maintained by the delivery engine.
    consecutive_failures = models.PositiveIntegerField(default=0)
    circuit_open_until = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    next_send_at = models.DateTimeField(null=True, blank=True)
    #: The strongest alert sent for the current failure streak (see django_webhooks.delivery.alerts);
    #: 0 when none was, reset by the success that closes the incident.
    alert_level = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("subscription")
        indexes = [
            models.Index(fields=["enabled", "owner_id"], name="dwh_sub_enabled_owner_idx"),
            models.Index(
                fields=["next_verification_at"],
                condition=Q(next_verification_at__isnull=False),
                name="dwh_sub_verification_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.url} ({', '.join(self.event_types) or 'no events'})"

    def circuit_is_open(self, now=None) -> bool:
        return bool(self.circuit_open_until and self.circuit_open_until > (now or timezone.now()))


class SubscriptionSecret(models.Model):
    """A signing secret, encrypted at rest. Several are valid at once during a rotation."""

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="secrets")
    encrypted = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text=_("Empty for the current secret."))

    class Meta:
        verbose_name = _("signing secret")
        indexes = [models.Index(fields=["subscription", "expires_at"], name="dwh_secret_sub_idx")]

    def __str__(self) -> str:
        state = "current" if self.expires_at is None else f"expires {self.expires_at:%Y-%m-%d %H:%M}"
        return f"secret #{self.pk} of subscription #{self.subscription_id} ({state})"


class SubscriptionSigningKey(models.Model):
    """An ed25519 key pair that makes ``v1a`` signatures: the private key (``whsk_``) encrypted at
    rest, the public key (``whpk_``) in the clear, published in the subscription's key set.
    Several sign at once during a rotation, like :class:`SubscriptionSecret`."""

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="signing_keys")
    encrypted = models.TextField()
    public_key = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text=_("Empty for the current key."))

    class Meta:
        verbose_name = _("signing key")
        indexes = [models.Index(fields=["subscription", "expires_at"], name="dwh_signing_key_sub_idx")]

    def __str__(self) -> str:
        state = "current" if self.expires_at is None else f"expires {self.expires_at:%Y-%m-%d %H:%M}"
        return f"signing key #{self.pk} of subscription #{self.subscription_id} ({state})"


class AuthMethod(models.TextChoices):
    """How requests to a receiver authenticate in headers (:mod:`django_webhooks.receiver_auth`)."""

    NONE = "none", _("none")
    BASIC = "basic", _("HTTP Basic (user name and password)")
    BEARER = "bearer", _("bearer token (Authorization: Bearer ...)")
    API_KEY = "api_key", _("API key in a header of its own")
    OAUTH2 = "oauth2", _("OAuth2 client credentials")


class OAuthClientAuth(models.TextChoices):
    """How the sender authenticates to the receiver's OAuth2 token endpoint."""

    CLIENT_SECRET_BASIC = "client_secret_basic", _("client_secret_basic: client id and secret in HTTP Basic")
    CLIENT_SECRET_POST = "client_secret_post", _("client_secret_post: client id and secret in the form")
    PRIVATE_KEY_JWT = "private_key_jwt", _("private_key_jwt: a JWT signed with the client's private key (RFC 7523)")


class ReceiverAuth(models.Model):
    """How a subscription's requests prove to the receiver who sends them: a header credential or
    OAuth2 client credentials (``method``), and optionally a TLS client certificate (mutual TLS).

    Every secret (password, token, client secret, private keys) is stored encrypted with the
    key ring of :mod:`django_webhooks.crypto` in the ``encrypted_*`` fields, empty when unset;
    certificates and CA bundles are public and stored as PEM. Written by
    :func:`django_webhooks.receiver_auth.configure_auth`, which also fills
    ``client_certificate_expires_at``.
    """

    id = models.BigAutoField(primary_key=True)
    subscription = models.OneToOneField(Subscription, on_delete=models.CASCADE, related_name="receiver_auth")
    method = models.CharField(max_length=16, choices=AuthMethod.choices, default=AuthMethod.NONE)
    username = models.CharField(max_length=255, blank=True, help_text=_("HTTP Basic user name."))
    header_name = models.CharField(max_length=100, blank=True, help_text=_("The header carrying the API key."))
    token_url = models.URLField(max_length=2000, blank=True, help_text=_("The receiver's OAuth2 token endpoint."))
    client_id = models.CharField(max_length=255, blank=True)
    client_auth = models.CharField(
        max_length=24, choices=OAuthClientAuth.choices, default=OAuthClientAuth.CLIENT_SECRET_BASIC
    )
    key_id = models.CharField(max_length=255, blank=True, help_text=_("kid of the private_key_jwt signing key."))
    scope = models.CharField(max_length=1000, blank=True)
    audience = models.CharField(max_length=2000, blank=True)
    resource = models.CharField(max_length=2000, blank=True)
    client_certificate = models.TextField(blank=True, help_text=_("PEM client certificate (chain) for mutual TLS."))
    client_certificate_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    ca_bundle = models.TextField(blank=True, help_text=_("PEM certificates trusted for this endpoint instead."))
    encrypted_password = models.TextField(blank=True)
    encrypted_token = models.TextField(blank=True)
    encrypted_client_secret = models.TextField(blank=True)
    encrypted_private_key = models.TextField(blank=True)
    encrypted_client_key = models.TextField(blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("receiver authentication")

    def __str__(self) -> str:
        tls = " + mutual TLS" if self.client_certificate else ""
        return f"{self.get_method_display()}{tls} for subscription #{self.subscription_id}"


class OAuthToken(models.Model):
    """The access token a subscription's OAuth2 token endpoint issued, encrypted, shared by every
    worker (:mod:`django_webhooks.delivery.oauth`). ``fingerprint`` names the settings it was
    obtained with, so a token of replaced credentials is never used."""

    id = models.BigAutoField(primary_key=True)
    receiver_auth = models.OneToOneField(ReceiverAuth, on_delete=models.CASCADE, related_name="token")
    fingerprint = models.CharField(max_length=64)
    encrypted = models.TextField()
    obtained_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()

    class Meta:
        verbose_name = _("OAuth2 access token")

    def __str__(self) -> str:
        return f"OAuth2 token of subscription auth #{self.receiver_auth_id} (expires {self.expires_at:%Y-%m-%d %H:%M})"


class Event(models.Model):
    """One occurrence, recorded in the transaction of the change it reports (the outbox)."""

    id = models.BigAutoField(primary_key=True)
    event_type = models.CharField(max_length=200, validators=[validate_event_type_name])
    payload = models.JSONField()
    owner_id = models.CharField(max_length=64, null=True, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True)
    schema_errors = models.JSONField(null=True, blank=True)
    body = models.TextField(blank=True, help_text=_("The exact bytes sent, fixed at fan-out."))
    #: The version of its event type the data is in: the type's current version when recorded.
    version = models.PositiveIntegerField(default=1, db_default=1)
    fanned_out_at = models.DateTimeField(null=True, blank=True)
    #: W3C trace context (``traceparent``, then `` `` and ``tracestate`` if any) of the span that
    #: recorded the event, when OpenTelemetry is installed; delivery spans link to it.
    trace_context = models.CharField(max_length=600, blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("event")
        indexes = [
            models.Index(fields=["created_at"], name="dwh_event_created_idx"),
            models.Index(fields=["owner_id", "-created_at"], name="dwh_event_owner_idx"),
            models.Index(fields=["event_type", "-created_at"], name="dwh_event_type_idx"),
            models.Index(fields=["id"], condition=Q(fanned_out_at__isnull=True), name="dwh_event_pending_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["owner_id", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False, owner_id__isnull=False),
                name="dwh_event_owner_idempotency_key",
            ),
            models.UniqueConstraint(
                fields=["idempotency_key"],
                condition=Q(idempotency_key__isnull=False, owner_id__isnull=True),
                name="dwh_event_idempotency_key",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.pk}"


class Handoff(models.Model):
    """Per django-q2 cluster: whether a fan-out task was asked for, or is polling for new events.

    Written by :mod:`django_webhooks.delivery.handoff`, so that a burst of commits enqueues one task
    instead of one each.
    """

    id = models.BigAutoField(primary_key=True)
    queue = models.CharField(max_length=100, unique=True)
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text=_("A fan-out task was enqueued then and has not started yet.")
    )
    active_until = models.DateTimeField(
        null=True, blank=True, help_text=_("A running task fans out again after this time.")
    )

    class Meta:
        verbose_name = _("handoff")

    def __str__(self) -> str:
        return f"handoff {self.queue}"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("pending")
    IN_FLIGHT = "in_flight", _("in flight")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    EXHAUSTED = "exhausted", _("exhausted")
    CANCELLED = "cancelled", _("cancelled")


#: Statuses after which the engine sends nothing more unless someone resends.
FINAL_STATUSES = (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED, DeliveryStatus.EXHAUSTED, DeliveryStatus.CANCELLED)


class Delivery(models.Model):
    """One event on its way to one subscription, across all of its attempts."""

    id = models.BigAutoField(primary_key=True)
    # No index of their own: the (event, subscription) constraint and the subscription-led indexes
    # below serve every lookup, and each index is written again on every status change.
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    #: Unique through ``dwh_delivery_message_id_uniq``: one index, in PostgreSQL's pattern order, that
    #: serves exact lookups and the log search's prefix matches (``LIKE 'msg_abc%'``) alike, where
    #: ``unique=True`` would build two.
    message_id = models.CharField(max_length=64, default=new_message_id)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    #: Requests made so far (the API's ``attempt_count``); the requests themselves are ``delivery_attempts``.
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, default=timezone.now)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    #: Shared by the deliveries claimed together as one lane (sent one after another).
    lease_token = models.CharField(max_length=32, blank=True, default="")
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=255, blank=True)
    #: What ``body`` is (fixed at fan-out with it): the request's Content-Type and ``ce-*`` headers follow it.
    payload_format = models.CharField(
        max_length=32, choices=PayloadFormat.choices, default=PayloadFormat.STANDARD, db_default=PayloadFormat.STANDARD
    )
    #: The event type version rendered into ``body``; None: the event's own version.
    event_version = models.PositiveIntegerField(null=True, blank=True)
    #: The exact bytes sent when they differ from the event's body (another format or version),
    #: fixed at fan-out so that every retry sends them again; empty: ``event.body``.
    body = models.TextField(blank=True, default="", db_default="")
    created_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=Q(status="pending"), name="dwh_delivery_due_idx"),
            models.Index(fields=["lease_expires_at"], condition=Q(status="in_flight"), name="dwh_delivery_lease_idx"),
            models.Index(
                fields=["subscription", "next_attempt_at", "id"],
                condition=Q(status="pending"),
                name="dwh_delivery_sub_due_idx",
            ),
            models.Index(
                fields=["subscription", "lease_expires_at", "lease_token"],
                condition=Q(status="in_flight"),
                name="dwh_delivery_lane_idx",
            ),
            # Filtering by status: partial, as most rows end succeeded (that filter reads the recency
            # indexes, where almost every row matches), so a success adds no entry to them.
            models.Index(
                fields=["subscription", "status", "id"],
                condition=~Q(status="succeeded"),
                name="dwh_delivery_sub_status_idx",
            ),
            models.Index(fields=["subscription", "-created_at"], name="dwh_delivery_sub_recent_idx"),
            models.Index(
                fields=["status", "-created_at"], condition=~Q(status="succeeded"), name="dwh_delivery_status_idx"
            ),
            models.Index(fields=["-created_at"], name="dwh_delivery_created_idx"),
        ]
        constraints = [
            models.UniqueConstraint(fields=["event", "subscription"], name="dwh_delivery_event_subscription"),
            models.UniqueConstraint(
                fields=["message_id"], name="dwh_delivery_message_id_uniq", opclasses=["varchar_pattern_ops"]
            ),
        ]

    def __str__(self) -> str:
        return f"{self.message_id} ({self.status})"


class ErrorClass(models.TextChoices):
    NONE = "", _("none")
    TIMEOUT = "timeout", _("timeout")
    CONNECTION = "connection", _("connection error")
    DNS = "dns", _("DNS error")
    TLS = "tls", _("TLS error")
    HTTP_STATUS = "http_status", _("HTTP error status")
    REDIRECT = "redirect", _("redirect (not followed)")
    BLOCKED_TARGET = "blocked_target", _("blocked target")
    INVALID_TARGET = "invalid_target", _("invalid target")
    INTERNAL = "internal", _("internal error")
    #: The receiver's OAuth2 token endpoint failed: no token, so the request was not sent.
    AUTH = "auth", _("authentication error")


class DeliveryAttempt(models.Model):
    """One HTTP request for a delivery, with what came back."""

    id = models.BigAutoField(primary_key=True)
    # ``delivery_attempts`` from both sides: ``Delivery.attempts`` is the counter (the API's ``attempt_count``).
    # Indexed by the (delivery, attempt_number) and (subscription, created_at) indexes below.
    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="delivery_attempts", db_index=False)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="delivery_attempts", db_index=False
    )
    attempt_number = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    url = models.URLField(max_length=2000)
    request_headers = models.JSONField(default=empty_dict)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=empty_dict, blank=True)
    response_body = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=16, choices=ErrorClass.choices, default=ErrorClass.NONE, blank=True)
    error_message = models.TextField(blank=True)
    succeeded = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("delivery attempt")
        indexes = [
            models.Index(fields=["subscription", "created_at"], name="dwh_attempt_sub_created_idx"),
            models.Index(fields=["delivery", "attempt_number"], name="dwh_attempt_delivery_idx"),
            models.Index(fields=["created_at"], name="dwh_attempt_created_idx"),
        ]

    def __str__(self) -> str:
        outcome = self.response_status or self.error_class or "?"
        return f"attempt {self.attempt_number} of {self.delivery_id}: {outcome}"


class AttemptStats(models.Model):
    """One subscription's attempts of one hour, counted as they are recorded.

    Written by :mod:`django_webhooks.delivery.attempt_stats` in the transaction that stores the
    attempts, so the figures equal the attempt rows; read by the stats API, the admin charts and
    the dashboard, whose cost then depends on the hours asked for, not on the attempts table.
    Kept after the attempts themselves are pruned. Latencies are counted in the buckets of
    :data:`django_webhooks.stats.LATENCY_BOUNDS_MS`: ``latency_le_<bound>`` for each, and
    ``latency_over`` for everything slower.
    """

    id = models.BigAutoField(primary_key=True)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE, related_name="attempt_stats")
    hour = models.DateTimeField(help_text=_("Start of the hour (UTC)."))
    attempts = models.PositiveIntegerField(default=0)
    successes = models.PositiveIntegerField(default=0)
    failed_4xx = models.PositiveIntegerField(default=0)
    failed_5xx = models.PositiveIntegerField(default=0)
    failed_timeout = models.PositiveIntegerField(default=0)
    failed_connection = models.PositiveIntegerField(default=0, help_text=_("Connection, DNS and TLS errors."))
    failed_other = models.PositiveIntegerField(default=0)
    duration_ms_total = models.PositiveBigIntegerField(default=0)
    latency_le_10 = models.PositiveIntegerField(default=0)
    latency_le_25 = models.PositiveIntegerField(default=0)
    latency_le_50 = models.PositiveIntegerField(default=0)
    latency_le_100 = models.PositiveIntegerField(default=0)
    latency_le_250 = models.PositiveIntegerField(default=0)
    latency_le_500 = models.PositiveIntegerField(default=0)
    latency_le_1000 = models.PositiveIntegerField(default=0)
    latency_le_2500 = models.PositiveIntegerField(default=0)
    latency_le_5000 = models.PositiveIntegerField(default=0)
    latency_le_10000 = models.PositiveIntegerField(default=0)
    latency_le_30000 = models.PositiveIntegerField(default=0)
    latency_le_60000 = models.PositiveIntegerField(default=0)
    latency_over = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = _("hourly attempt statistics")
        verbose_name_plural = _("hourly attempt statistics")
        constraints = [models.UniqueConstraint(fields=["subscription", "hour"], name="dwh_stats_sub_hour")]
        indexes = [models.Index(fields=["hour"], name="dwh_stats_hour_idx")]

    def __str__(self) -> str:
        return f"{self.attempts} attempts of subscription #{self.subscription_id} in the hour of {self.hour:%Y-%m-%d %H:00}"


class AuditAction(models.TextChoices):
    """What a customer did in the portal (:mod:`django_webhooks.portal.audit`)."""

    LINK_OPENED = "link.opened", _("portal link opened")
    LINKS_REVOKED = "links.revoked", _("portal links revoked")
    SUBSCRIPTION_CREATED = "subscription.created", _("endpoint created")
    SUBSCRIPTION_UPDATED = "subscription.updated", _("endpoint changed")
    SUBSCRIPTION_DELETED = "subscription.deleted", _("endpoint deleted")
    SUBSCRIPTION_ENABLED = "subscription.enabled", _("endpoint enabled")
    SUBSCRIPTION_DISABLED = "subscription.disabled", _("endpoint disabled")
    SECRET_REVEALED = "secret.revealed", _("signing secret revealed")
    SECRET_ROTATED = "secret.rotated", _("signing secret rotated")
    TEST_EVENT_SENT = "test_event.sent", _("test event sent")
    DELIVERY_RESENT = "delivery.resent", _("delivery resent")
    DELIVERIES_RECOVERED = "deliveries.recovered", _("failed deliveries recovered")


class AuditLogEntry(models.Model):
    """Who did what to which of an owner's objects through the customer portal, and when.

    Written in the transaction of the change it records; shown read-only to staff in the admin.
    ``link_nonce`` is set on the entry of a portal link's first use and is unique, so a second
    use of the same link cannot record it again (:mod:`django_webhooks.portal.links`); a
    ``links.revoked`` entry ends every link of its owner issued before it.
    """

    id = models.BigAutoField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
    owner_id = models.CharField(max_length=64)
    #: "alice (user #3)" or "portal link for owner 7": readable after the user is gone.
    actor = models.CharField(max_length=255)
    actor_user_id = models.CharField(max_length=64, blank=True, default="")
    action = models.CharField(max_length=32, choices=AuditAction.choices)
    object_type = models.CharField(max_length=32, blank=True, default="")
    object_id = models.CharField(max_length=64, blank=True, default="")
    object_repr = models.CharField(max_length=255, blank=True, default="")
    #: What changed (``{"field": [before, after]}``) or the action's figures (``{"recovered": 3}``).
    changes = models.JSONField(default=empty_dict, blank=True)
    link_nonce = models.CharField(max_length=64, null=True, blank=True, unique=True)

    class Meta:
        verbose_name = _("portal audit log entry")
        verbose_name_plural = _("portal audit log")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["owner_id", "-created_at"], name="dwh_audit_owner_idx"),
            models.Index(fields=["owner_id", "action", "-created_at"], name="dwh_audit_owner_action_idx"),
            models.Index(fields=["-created_at"], name="dwh_audit_created_idx"),
        ]

    def __str__(self) -> str:
        target = f" {self.object_type} #{self.object_id}" if self.object_id else ""
        return f"{self.actor}: {self.action}{target}"

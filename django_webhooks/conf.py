"""Settings for django-webhooks: one ``DJANGO_WEBHOOKS`` dict, read lazily.

Every default lives in :data:`DEFAULTS`. Values are looked up on each attribute access of
:data:`webhooks_settings`, so ``override_settings(DJANGO_WEBHOOKS=...)`` works in tests and
nothing is captured at import time.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import WebhooksConfigurationError

SETTING_NAME = "DJANGO_WEBHOOKS"

DEFAULTS: dict[str, Any] = {
    # --- ownership -------------------------------------------------------------------------
    # Model whose instances own subscriptions and events ("app_label.ModelName").
    # None means settings.AUTH_USER_MODEL.
    "OWNER_MODEL": None,
    # Dotted path to a callable ``(request) -> owner or None`` used by the REST API.
    "OWNER_RESOLVER": "django_webhooks.owners.request_user",
    # --- event catalog and capture --------------------------------------------------------
    # {"order.created": {"description": "...", "schema": {...}, "example": {...}, "thin": False}}
    "EVENT_TYPES": {},
    # Model-change bindings, see django_webhooks.capture.bindings.
    "BINDINGS": [],
    # What to do when a payload fails its event type's JSON Schema: "raise" or "record".
    "SCHEMA_VALIDATION": "raise",
    # Largest serialized payload accepted by send_event(), in bytes.
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    # Format string for thin payloads' "url" field; gets {type}, {id} and {event_id}.
    "THIN_PAYLOAD_URL": "",
    # --- secrets --------------------------------------------------------------------------
    # Keys that encrypt signing secrets at rest (newest first). Empty: derived from SECRET_KEY.
    "ENCRYPTION_KEYS": [],
    # Seconds a rotated-out secret keeps signing next to the new one.
    "SECRET_ROTATION_OVERLAP": 24 * 3600,
    # --- HTTP -----------------------------------------------------------------------------
    "CONNECT_TIMEOUT": 5.0,
    "TIMEOUT": 15.0,
    "MAX_RESPONSE_BYTES": 20 * 1024,
    # Response header lines (at most 99, http.client's limit) and their bytes read per attempt;
    # past either, the rest of the response is not read and the headers are marked as truncated.
    "MAX_RESPONSE_HEADERS": 64,
    "MAX_RESPONSE_HEADER_BYTES": 16 * 1024,
    "USER_AGENT": "",
    "MAX_CUSTOM_HEADERS": 20,
    # --- target safety (SSRF guard) -------------------------------------------------------
    # CIDRs ("10.1.0.0/16") and host names ("hooks.internal") that may be reached although
    # they are not public.
    "ALLOWED_TARGETS": [],
    # Allow 127.0.0.0/8 and ::1. Only for tests and local demos.
    "ALLOW_LOOPBACK": False,
    # Ports target URLs may use (e.g. [443, 80, 8443]); None means any port.
    "ALLOWED_PORTS": None,
    # Refuse plain-http targets. None means "when DEBUG is off".
    "REQUIRE_HTTPS": None,
    # Dotted path to a getaddrinfo-compatible resolver (a hook for tests).
    "RESOLVER": "socket.getaddrinfo",
    # --- endpoint handshake (django_webhooks.delivery.handshake) ----------------------------
    # Every subscription must answer a verification challenge before anything is sent to it, and
    # again after each URL change; False: only those with verify_endpoint set.
    "REQUIRE_ENDPOINT_VERIFICATION": False,
    # --- retry and delivery engine --------------------------------------------------------
    "RETRY_POLICY": "django_webhooks.retry.DefaultRetryPolicy",
    # Seconds to wait before each retry (after the 1st, 2nd, ... attempt). Svix's schedule.
    "RETRY_SCHEDULE": [5, 300, 1800, 7200, 18000, 36000, 36000],
    "RETRY_JITTER": 0.2,
    # Longest wait (seconds) a receiver's Retry-After header may ask for; twice the scheduled wait
    # is always allowed.
    "MAX_RETRY_AFTER": 3600,
    # Seconds a worker's claim on a delivery lasts unless renewed (its task renews it while it
    # works); a dead worker's claims expire after it. Must exceed TIMEOUT (test events).
    "LEASE_SECONDS": 20,
    # Most deliveries in one lane: claimed together for one subscription and sent one after
    # another over one keep-alive connection.
    "CLAIM_BATCH_SIZE": 50,
    # Concurrent HTTP requests (lanes) inside one worker task.
    "SEND_CONCURRENCY": 16,
    # Seconds a delivery task keeps claiming before it returns its worker.
    "TASK_TIME_BUDGET": 30,
    # What runs our tasks: "django_q" (django-q2's qcluster) or "django_tasks" (Django's Tasks
    # framework, the django_tasks backport on Django 5.2; settings.TASKS["default"]).
    "DISPATCHER": "django_q",
    # Name of the django-q2 cluster (Q_CLUSTER["name"]), or of the Tasks queue, our tasks go to;
    # None = the default cluster / the "default" queue.
    "QUEUE": None,
    # Django Tasks only: how many workers take tasks from QUEUE (e.g. db_worker processes). A
    # backlog is split between at most this many tasks; django-q2's count is Q_CLUSTER["workers"].
    "TASKS_WORKERS": 1,
    # --- endpoint health ------------------------------------------------------------------
    "MAX_IN_FLIGHT_PER_SUBSCRIPTION": 2,
    "CIRCUIT_BREAKER_THRESHOLD": 5,
    "CIRCUIT_BREAKER_COOLDOWN": 60,
    "CIRCUIT_BREAKER_MAX_COOLDOWN": 3600,
    # Seconds of failures only, with no success, after which a subscription is disabled.
    "AUTO_DISABLE_AFTER": 5 * 24 * 3600,
    # Email the owner (through django.core.mail) when their subscription is disabled.
    "NOTIFY_OWNER_ON_DISABLE": False,
    # --- alerts (django_webhooks.delivery.alerts) --------------------------------------------
    # Consecutive failed attempts after which an endpoint is "failing" (one alert per incident);
    # None or 0: no failing alert.
    "ALERT_FAILING_AFTER": 4,
    # Percentages of AUTO_DISABLE_AFTER spent failing at which the owner is warned, once each per
    # incident (disabling itself is 100%).
    "ALERT_BUDGET_THRESHOLDS": [50, 70, 90],
    # Email the owner (through django.core.mail) about each alert and recovery.
    "NOTIFY_OWNER_ON_ALERT": False,
    # Deliver webhook.endpoint.failing / .recovered / .disabled events to the owner's subscriptions
    # that ask for them by name (or by the webhook.endpoint.* pattern).
    "OPERATIONAL_EVENTS": True,
    # --- payload formats (django_webhooks.delivery.formats) -------------------------------
    # The CloudEvents "source" of every event sent in a CloudEvents format: a URI-reference
    # naming this producer, e.g. "https://shop.example.com/webhooks".
    "CLOUDEVENTS_SOURCE": "/django-webhooks",
    # --- monitoring -----------------------------------------------------------------------
    # Bearer token that may read the metrics view besides staff users; empty: staff only.
    "METRICS_TOKEN": "",
    # --- retention ------------------------------------------------------------------------
    "RETENTION_DAYS": 30,
    "PRUNE_BATCH_SIZE": 1000,
    # --- REST API -------------------------------------------------------------------------
    # Let staff users see and act on every owner's objects through the API with ?all_owners=1.
    "API_STAFF_SEES_ALL": False,
    "API_THROTTLE_RATES": {"webhooks": "600/min", "webhooks_actions": "30/min"},
}

#: Settings holding dotted paths, imported on access.
IMPORT_STRINGS = {"OWNER_RESOLVER", "RETRY_POLICY", "RESOLVER"}


class WebhooksSettings:
    """Attribute access to ``settings.DJANGO_WEBHOOKS`` merged over :data:`DEFAULTS`."""

    #: The ``DJANGO_WEBHOOKS`` dict last found valid: checking it again on every read would cost
    #: more than the read, and the capture path reads several settings per event.
    _validated: Any = None
    #: Values read from the dict at key None (a new dict, as ``override_settings`` makes,
    #: starts afresh): the capture path reads several settings per event.
    _values: dict[str | None, Any] = {}

    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, SETTING_NAME, None) or {}
        if not isinstance(value, dict):
            raise WebhooksConfigurationError(f"{SETTING_NAME} must be a dict, not {type(value).__name__}.")
        return value

    def unknown_keys(self) -> list[str]:
        return sorted(set(self.user_settings()) - set(DEFAULTS))

    def raw(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django-webhooks setting {name!r}.")
        value = getattr(settings, SETTING_NAME, None)
        if value is None or value is not self._validated:
            unknown = self.unknown_keys()
            if unknown:
                raise WebhooksConfigurationError(
                    f"Unknown key(s) in {SETTING_NAME}: {', '.join(unknown)}. Valid keys: {', '.join(sorted(DEFAULTS))}."
                )
            value = self._validated = self.user_settings()
        return value.get(name, DEFAULTS[name])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self._values
        if values.get(None) is getattr(settings, SETTING_NAME, None):
            try:
                return values[name]
            except KeyError:
                pass
        value = self.raw(name)
        if name in IMPORT_STRINGS and isinstance(value, str):
            return import_setting(name, value)
        if values.get(None) is not self._validated:
            values.clear()
            values[None] = self._validated
        values[name] = value
        return value

    @property
    def owner_model_label(self) -> str:
        return self.raw("OWNER_MODEL") or settings.AUTH_USER_MODEL

    @property
    def require_https(self) -> bool:
        value = self.raw("REQUIRE_HTTPS")
        return (not settings.DEBUG) if value is None else bool(value)


def import_setting(name: str, path: str) -> Any:
    """Import ``path`` for setting ``name``; a failure names the setting to fix."""
    return import_dotted(path, f"{SETTING_NAME}[{name!r}] =")


def import_dotted(path: str, what: str) -> Any:
    """Import ``path``; a failure raises ``WebhooksConfigurationError`` starting with ``what`` (where it was set)."""
    try:
        return import_string(path)
    except ImportError as exc:
        raise WebhooksConfigurationError(f"{what} {path!r} could not be imported: {exc}") from exc


webhooks_settings = WebhooksSettings()

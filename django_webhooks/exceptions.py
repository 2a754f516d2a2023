"""Exceptions raised by django-webhooks, rooted at :class:`WebhooksError`."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured


class WebhooksError(Exception):
    """Base class of every django-webhooks error."""


class WebhooksConfigurationError(WebhooksError, ImproperlyConfigured):
    """A setting is wrong (``DJANGO_WEBHOOKS``, a binding, a dotted path); the message names it.

    Every configuration error django-webhooks raises is one; being an ``ImproperlyConfigured``
    too, code that catches Django's exception keeps catching it.
    """


class UnknownEventType(WebhooksError, ValueError):
    """``send_event`` was called with a type that is neither declared nor in the catalog."""


class InvalidPayload(WebhooksError, ValueError):
    """An event's data does not match its type's JSON Schema, or is not JSON-serializable."""

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidOwner(WebhooksError, ValueError):
    """An ``owner`` is not an instance (or primary key) of ``OWNER_MODEL``."""


class InvalidIdempotencyKey(WebhooksError, ValueError):
    """An idempotency key is not a string the ``Event`` table can store."""


class EventVersionError(WebhooksError):
    """An event cannot be rendered in the version a subscription pins (no converter path, or
    the converter failed); the delivery is recorded as failed with this message."""


class PayloadTooLarge(InvalidPayload):
    """The serialized payload is larger than ``MAX_PAYLOAD_BYTES``."""


class BlockedTarget(WebhooksError):
    """A target URL is not allowed: bad scheme, non-public address, or unresolvable host."""

    def __init__(self, message: str, *, error_class: str = "blocked_target") -> None:
        super().__init__(message)
        self.error_class = error_class


class SignatureVerificationError(WebhooksError):
    """An incoming webhook's signature, timestamp or headers are missing or wrong."""


class SecretDecryptionError(WebhooksError):
    """A stored secret cannot be decrypted with any key in ``ENCRYPTION_KEYS``."""


class MissingSecret(WebhooksError, LookupError):
    """A subscription has no current signing secret (it was made by ``bulk_create`` or loaded as a
    fixture, and nothing has signed for it yet); ``secret_store.rotate_secret()`` gives it one."""

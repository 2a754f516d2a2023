"""django-webhooks: outgoing webhooks for Django, signed per Standard Webhooks, on django-q2."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .models import Event

__all__ = ["__version__", "asend_event", "asend_events_for_queryset", "send_event", "send_events_for_queryset"]


def send_event(event_type: str, data: Any, *, owner: Any = None, idempotency_key: str | None = None) -> Event:
    """Record an event in the current transaction; it is delivered after commit.

    See :func:`django_webhooks.capture.events.send_event`.
    """
    # Imported on call: the package is imported before the app registry is ready, and
    # capture.events loads the models.
    from .capture.events import send_event as _send_event

    return _send_event(event_type, data, owner=owner, idempotency_key=idempotency_key)


def send_events_for_queryset(event_type: str, queryset: Any, **kwargs: Any) -> list[Event]:
    """Record one event per object of ``queryset`` (for ``update()`` and ``bulk_create``)."""
    from .capture.events import send_events_for_queryset as _impl  # on call, as above

    return _impl(event_type, queryset, **kwargs)


async def asend_event(event_type: str, data: Any, *, owner: Any = None, idempotency_key: str | None = None) -> Event:
    """:func:`send_event` for async views; see :func:`django_webhooks.capture.events.asend_event`."""
    from .capture.events import asend_event as _impl  # on call, as above

    return await _impl(event_type, data, owner=owner, idempotency_key=idempotency_key)


async def asend_events_for_queryset(event_type: str, queryset: Any, **kwargs: Any) -> list[Event]:
    """:func:`send_events_for_queryset` for async code."""
    from .capture.events import asend_events_for_queryset as _impl  # on call, as above

    return await _impl(event_type, queryset, **kwargs)

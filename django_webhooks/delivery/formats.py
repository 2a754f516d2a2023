"""Request bodies per payload format and event type version, fixed at fan-out.

A subscription chooses how its requests carry an event (:class:`~django_webhooks.models.PayloadFormat`):

* ``standard``: the Standard Webhooks envelope ``{"type", "timestamp", "data"}`` (``Event.body``);
* ``cloudevents``: a CloudEvents 1.0 event in structured JSON mode
  (``Content-Type: application/cloudevents+json``): ``specversion``, ``id``, ``source``,
  ``type``, ``time``, ``datacontenttype`` and ``data``;
* ``cloudevents_binary``: CloudEvents binary mode: the body is the data alone
  (``application/json``) and the attributes travel as ``ce-*`` headers (:func:`format_headers`).

Every format is signed the same way (the Standard Webhooks headers over the exact body bytes).
The CloudEvents ``id`` is the event's id, the same for every subscription and every retry: it
names the occurrence, and CloudEvents consumers treat ``source`` + ``id`` as its identity, so a
retry or a resend is a duplicate they may drop (``webhook-id`` still names the delivery).

A subscription may pin an older version of an event type (``Subscription.event_versions``); the
data is rendered down the converter chain (:func:`django_webhooks.catalog.convert`). Bodies are
built once per event, format and version (:class:`EventRenderer`) and stored on the delivery when
they differ from ``Event.body``, so every retry sends identical bytes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from ..catalog import convert
from ..conf import webhooks_settings
from ..exceptions import EventVersionError
from ..models import Delivery, Event, PayloadFormat

CLOUDEVENTS_SPEC_VERSION = "1.0"
#: Content-Type of each format's body.
CONTENT_TYPES: dict[str, str] = {
    PayloadFormat.STANDARD: "application/json",
    PayloadFormat.CLOUDEVENTS: "application/cloudevents+json",
    PayloadFormat.CLOUDEVENTS_BINARY: "application/json",
}
#: The CloudEvents attributes binary mode sends as ``ce-<name>`` headers (protected headers).
BINARY_ATTRIBUTES = ("specversion", "id", "source", "type", "time")
CLOUDEVENTS_HEADERS = frozenset(f"ce-{name}" for name in BINARY_ATTRIBUTES)


def dumps(value: Any) -> str:
    """Compact JSON, as every body is sent; raises ``ValueError``/``TypeError`` for what JSON cannot carry."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_time(event: Event) -> str:
    """When the event happened, RFC 3339 in UTC (``2025-03-01T08:00:00.123456Z``)."""
    created: datetime = event.created_at
    return created.astimezone(UTC).isoformat().replace("+00:00", "Z")


def envelope_data(event: Event, thin: bool) -> Any:
    """The event's data as sent: the payload, or ``{"id", "type", "url"}`` for thin types."""
    if not thin:
        return event.payload
    object_id = event.payload.get("id") if isinstance(event.payload, dict) else None
    url_format = webhooks_settings.THIN_PAYLOAD_URL
    url = url_format.format(type=event.event_type, id=object_id, event_id=event.pk) if url_format else None
    return {"id": object_id, "type": event.event_type, "url": url}


def cloudevent_attributes(event: Event) -> dict[str, str]:
    """The CloudEvents context attributes of ``event`` (``id``: the event's id, see the module)."""
    return {
        "specversion": CLOUDEVENTS_SPEC_VERSION,
        "id": str(event.pk),
        "source": str(webhooks_settings.CLOUDEVENTS_SOURCE),
        "type": event.event_type,
        "time": event_time(event),
    }


def render(event: Event, payload_format: str, data: Any) -> str:
    """The body of ``event`` carrying ``data`` in ``payload_format``, as compact JSON text."""
    if payload_format == PayloadFormat.CLOUDEVENTS:
        return dumps({**cloudevent_attributes(event), "datacontenttype": "application/json", "data": data})
    if payload_format == PayloadFormat.CLOUDEVENTS_BINARY:
        return dumps(data)
    return dumps({"type": event.event_type, "timestamp": event_time(event), "data": data})


def format_headers(delivery: Delivery) -> dict[str, str]:
    """The headers a delivery's format needs: its Content-Type, and in binary mode the ``ce-*`` attributes."""
    payload_format = delivery.payload_format
    headers = {"Content-Type": CONTENT_TYPES.get(payload_format, "application/json")}
    if payload_format == PayloadFormat.CLOUDEVENTS_BINARY:
        attributes = cloudevent_attributes(delivery.event)
        headers.update((f"ce-{name}", attributes[name]) for name in BINARY_ATTRIBUTES)
    return headers


class Rendered(NamedTuple):
    """A delivery's body: ``body`` ("" for the event's own body) or why it cannot be built."""

    body: str = ""
    error: str = ""


class EventRenderer:
    """The bodies of one event, built once per (format, version) its subscriptions ask for.

    ``Event.body`` (the standard envelope of the recorded version) must be set first; it is what a
    delivery sends when its body is empty.
    """

    def __init__(self, event: Event, thin: bool) -> None:
        self.event = event
        self.thin = thin
        self._bodies: dict[tuple[str, int], Rendered] = {}
        #: version -> its data, or the EventVersionError that kept it from being built.
        self._data: dict[int, Any] = {}

    def version_for(self, pins: Mapping[str, Any] | None) -> int:
        """The version a subscription with ``pins`` gets: its pin for this type, else the event's."""
        pinned = (pins or {}).get(self.event.event_type)
        return pinned if isinstance(pinned, int) and not isinstance(pinned, bool) else self.event.version

    def render(self, payload_format: str, version: int) -> Rendered:
        key = (payload_format, version)
        rendered = self._bodies.get(key)
        if rendered is None:
            rendered = self._bodies[key] = self._render(payload_format, version)
        return rendered

    def _render(self, payload_format: str, version: int) -> Rendered:
        event = self.event
        if payload_format == PayloadFormat.STANDARD and (version == event.version or self.thin):
            return Rendered()
        if self.thin:
            # A thin event is a reference to fetch: the same in every version.
            data = envelope_data(event, thin=True)
        else:
            if version not in self._data:
                try:
                    self._data[version] = convert(event.event_type, event.payload, event.version, version)
                except EventVersionError as exc:
                    self._data[version] = exc
            data = self._data[version]
            if isinstance(data, EventVersionError):
                return Rendered(error=str(data))
        try:
            return Rendered(body=render(event, payload_format, data))
        except (TypeError, ValueError) as exc:
            return Rendered(error=f"{event.event_type} version {version} cannot be sent as JSON: {exc}")

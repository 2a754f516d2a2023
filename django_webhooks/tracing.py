"""OpenTelemetry traces (the optional ``tracing`` extra): a span when an event is recorded, and
two per delivery attempt, linked to it. See docs/monitoring.md, "Traces (OpenTelemetry)".

Recording an event opens a PRODUCER span, ``<event_type> publish``, and stores its W3C trace
context on the event row (:attr:`Event.trace_context <django_webhooks.models.Event.trace_context>`).
A worker sends the event minutes or days later, in another process, often as one of many
deliveries, so each attempt starts a trace of its own: a CONSUMER span, ``<event_type> process``,
*linked* to the stored context (a link, not a parent: one event fans out to many subscriptions
and retries, and a parent would stretch the producer's trace over all of them), and inside it an
HTTP CLIENT span, ``POST``, following the HTTP client semantic conventions. A subscription with
``send_traceparent`` also sends the client span's ``traceparent`` to its receiver.

Without ``opentelemetry-api`` installed every entry point here returns a shared object whose
methods do nothing: the import is tried once, never per call. With the API but no SDK (no tracer
provider configured) the spans are OpenTelemetry's non-recording ones and nothing is stored or
sent. Tracing never makes a capture or a delivery fail: what goes wrong here is logged.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

from .delivery.targets import loggable_url
from .models import Delivery, Event

try:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the ``tracing`` extra is not installed
    AVAILABLE = False
else:
    AVAILABLE = True
    #: A proxy until the host configures a tracer provider, then that provider's tracer.
    _tracer = trace.get_tracer("django_webhooks")
    #: W3C Trace Context whatever the host's global propagator is: the header is ``traceparent``.
    _propagator = TraceContextTextMapPropagator()
    #: OpenTelemetry's HTTP instrumentations (requests, urllib3) create no span of their own under
    #: ours and inject no header while this key is set: our client span is the request's span,
    #: and only a subscription that opted in receives a ``traceparent``.
    _SUPPRESS_HTTP = getattr(otel_context, "_SUPPRESS_HTTP_INSTRUMENTATION_KEY", None)

logger = logging.getLogger("django_webhooks.tracing")

#: ``messaging.system`` of every span.
MESSAGING_SYSTEM = "django_webhooks"
#: Longest stored trace context (``traceparent`` is 55 characters, ``tracestate`` up to 512).
MAX_TRACE_CONTEXT = Event._meta.get_field("trace_context").max_length or 600
_DEFAULT_PORTS = {"http": 80, "https": 443}


# --- the producer: recording an event ------------------------------------------------------------


class Publication:
    """The span of recording one or several events (this base class: no tracing, does nothing).

    Use as a context manager around the recording; :attr:`context` is the text to store in each
    event's ``trace_context`` ("" when nothing traces).
    """

    context = ""

    def __enter__(self) -> Publication:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None

    def recorded(self, event_ids: list[int | None]) -> None:
        """The ids of the events recorded (None where the backend could not return one)."""


_NO_PUBLICATION = Publication()


class _RecordingPublication(Publication):
    def __init__(self, event_type: str) -> None:
        self.event_type = event_type
        self.span: trace.Span | None = None
        self.scope: otel_context.Token[otel_context.Context] | None = None

    def __enter__(self) -> Publication:
        try:
            self.span = _tracer.start_span(
                f"{self.event_type} publish",
                kind=trace.SpanKind.PRODUCER,
                attributes={
                    "messaging.system": MESSAGING_SYSTEM,
                    "messaging.operation.type": "publish",
                    "messaging.destination.name": self.event_type,
                },
            )
            if self.span.get_span_context().is_valid:  # else no SDK, no caller's trace: nothing to keep
                self.scope = otel_context.attach(trace.set_span_in_context(self.span))
                self.context = serialize_context(self.span)
        except Exception:
            logger.exception("Could not start the trace span of a %s event; it is recorded untraced.", self.event_type)
            self.context = ""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self.span is None:
            return
        try:
            if exc is not None:
                self.span.record_exception(exc)
                self.span.set_status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:500])
                self.span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
            if self.scope is not None:
                otel_context.detach(self.scope)
            self.span.end()
        except Exception:
            logger.exception("Could not end the trace span of a %s event.", self.event_type)

    def recorded(self, event_ids: list[int | None]) -> None:
        if self.span is None:
            return
        if len(event_ids) == 1 and event_ids[0] is not None:
            self.span.set_attribute("messaging.message.id", str(event_ids[0]))
        elif len(event_ids) > 1:
            self.span.set_attribute("messaging.batch.message_count", len(event_ids))


def publishing(event_type: str) -> Publication:
    """The PRODUCER span for recording events of ``event_type``: ``with publishing(t) as p:``."""
    if not AVAILABLE:
        return _NO_PUBLICATION
    return _RecordingPublication(event_type)


def serialize_context(span: trace.Span) -> str:
    """``span``'s context as an event stores it: ``traceparent``, then a space and ``tracestate``
    when there is one and it fits; "" for a span that is not part of a trace (no SDK)."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=trace.set_span_in_context(span))
    parent = carrier.get("traceparent", "")
    state = carrier.get("tracestate", "")
    if parent and state and len(parent) + 1 + len(state) <= MAX_TRACE_CONTEXT:
        return f"{parent} {state}"
    return parent


def _stored_link(trace_context: str) -> list[trace.Link]:
    """A link to the span that recorded the event, from its stored context (none if unreadable)."""
    if not trace_context:
        return []
    parent, _, state = trace_context.partition(" ")
    carrier = {"traceparent": parent, "tracestate": state} if state else {"traceparent": parent}
    span_context = trace.get_current_span(_propagator.extract(carrier)).get_span_context()
    return [trace.Link(span_context)] if span_context.is_valid else []


# --- the consumer: one delivery attempt ----------------------------------------------------------


class Outcome(Protocol):
    """What an attempt's spans read of its :class:`~django_webhooks.delivery.transport.TransportResult`.

    Structural, so that capture (which imports this module in the web process) does not import
    the transport and what it needs.
    """

    status: int | None
    error_class: str
    error_message: str

    @property
    def succeeded(self) -> bool: ...


class AttemptTrace:
    """The spans of one delivery attempt (this base class: no tracing, does nothing).

    A sender thread uses it as a context manager around signing and sending, asks for
    :meth:`headers` when the subscription opted into ``traceparent`` and reports the
    :meth:`result`.
    """

    def __enter__(self) -> AttemptTrace:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None

    def headers(self) -> dict[str, str]:
        """``traceparent`` (and ``tracestate``) of the request's span, for the receiver."""
        _warn_untraced_once()
        return {}

    def result(self, result: Outcome) -> None:
        """What the request produced: status code, error class, span status."""


_NO_ATTEMPT = AttemptTrace()
_warned_untraced = False


def _warn_untraced_once() -> None:
    global _warned_untraced
    if not _warned_untraced:
        _warned_untraced = True
        logger.warning(
            "A subscription asks for the traceparent header, but opentelemetry-api is not installed "
            "(pip install 'django-webhooks[tracing]'); no traceparent is sent."
        )


class _RecordingAttempt(AttemptTrace):
    def __init__(self, delivery: Delivery, url: str) -> None:
        self.delivery = delivery
        self.url = url
        self.consumer: trace.Span | None = None
        self.client: trace.Span | None = None
        self.scope: otel_context.Token[otel_context.Context] | None = None

    def __enter__(self) -> AttemptTrace:
        delivery = self.delivery
        event = delivery.event
        try:
            attributes: dict[str, str | int] = {
                "messaging.system": MESSAGING_SYSTEM,
                "messaging.operation.type": "process",
                "messaging.destination.name": event.event_type,
                "messaging.message.id": str(delivery.event_id),
                "django_webhooks.delivery.id": delivery.pk,
                "django_webhooks.subscription.id": delivery.subscription_id,
                "django_webhooks.webhook_id": delivery.message_id,
            }
            self.consumer = _tracer.start_span(
                f"{event.event_type} process",
                kind=trace.SpanKind.CONSUMER,
                attributes=attributes,
                links=_stored_link(event.trace_context),
            )
            self.client = _tracer.start_span(
                "POST",
                context=trace.set_span_in_context(self.consumer),
                kind=trace.SpanKind.CLIENT,
                attributes=_client_attributes(self.url, delivery.attempts),
            )
            current = trace.set_span_in_context(self.client)
            if _SUPPRESS_HTTP is not None:
                current = otel_context.set_value(_SUPPRESS_HTTP, True, current)
            self.scope = otel_context.attach(current)
        except Exception:
            logger.exception("Could not start the trace spans of delivery %s; it is sent untraced.", delivery.pk)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            if self.scope is not None:
                otel_context.detach(self.scope)
            for span in (self.client, self.consumer):
                if span is not None:
                    span.end()
        except Exception:
            logger.exception("Could not end the trace spans of delivery %s.", self.delivery.pk)

    def headers(self) -> dict[str, str]:
        if self.client is None:
            return {}
        carrier: dict[str, str] = {}
        _propagator.inject(carrier, context=trace.set_span_in_context(self.client))
        return carrier

    def result(self, result: Outcome) -> None:
        try:
            error_type = _error_type(result)
            if self.client is not None and result.status is not None:
                self.client.set_attribute("http.response.status_code", result.status)
            for span in (self.client, self.consumer):
                if span is not None and error_type:
                    span.set_attribute("error.type", error_type)
                    span.set_status(trace.StatusCode.ERROR, result.error_message[:500] or None)
        except Exception:
            logger.exception("Could not record the outcome of delivery %s on its trace spans.", self.delivery.pk)


def _client_attributes(url: str, earlier_attempts: int) -> dict[str, str | int]:
    """HTTP client span attributes known before the request (``url.full`` without query or fragment)."""
    parts = urlsplit(url)
    attributes: dict[str, str | int] = {"http.request.method": "POST", "url.full": loggable_url(url)}
    if parts.hostname:
        attributes["server.address"] = parts.hostname
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
    if port:
        attributes["server.port"] = port
    if earlier_attempts > 0:
        attributes["http.request.resend_count"] = earlier_attempts
    return attributes


def _error_type(result: Outcome) -> str:
    """``error.type`` of a failed attempt: the status code from 400 on, else our error class; "" for a success."""
    if result.succeeded:
        return ""
    if result.status is not None and result.status >= 400:
        return str(result.status)
    return result.error_class or "unexpected_status"


def delivery_attempt(delivery: Delivery, url: str) -> AttemptTrace:
    """The spans of sending ``delivery`` (its ``event`` loaded) to ``url`` now, in this thread.

    ``delivery.attempts`` counts the attempts made before this one (the resend count).
    """
    if not AVAILABLE:
        return _NO_ATTEMPT
    return _RecordingAttempt(delivery, url)


__all__ = ["AVAILABLE", "AttemptTrace", "Outcome", "Publication", "delivery_attempt", "publishing"]

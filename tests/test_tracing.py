"""OpenTelemetry traces (django_webhooks/tracing.py): the producer span and its stored context,
the consumer and HTTP client spans of each attempt over loopback HTTP, the traceparent opt-in,
and a process without OpenTelemetry.

Spans go to the SDK's in-memory exporter through a tracer provider of this module's own, which
the ``spans`` fixture gives ``django_webhooks.tracing`` for the test: the process's global
provider is never set, so no other test records spans.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, TraceState
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks import tracing
from django_webhooks.capture.events import send_event, send_events_for_queryset
from django_webhooks.delivery import lanes
from django_webhooks.delivery.endpoints import Endpoints
from django_webhooks.delivery.fanout import fan_out_pending
from django_webhooks.delivery.headers import request_headers
from django_webhooks.exceptions import InvalidPayload
from django_webhooks.models import Delivery, DeliveryAttempt, Event, Subscription
from django_webhooks.secret_store import current_secret
from tests.api import API, client_for
from tests.models import Order
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def spans(monkeypatch):
    """The in-memory exporter receiving every span django_webhooks ends during the test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(tracing, "_tracer", provider.get_tracer("django_webhooks"))
    yield exporter
    provider.shutdown()


def traceparent_of(span: ReadableSpan) -> str:
    context = span.get_span_context()
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def linked(span: ReadableSpan) -> list[tuple[int, int]]:
    """The (trace id, span id) of each span ``span`` links to (a stored context is remote)."""
    return [(link.context.trace_id, link.context.span_id) for link in span.links]


def ids(span: ReadableSpan) -> tuple[int, int]:
    return span.context.trace_id, span.context.span_id


def only(exporter: InMemorySpanExporter, kind: SpanKind) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.kind == kind]


def deliver() -> None:
    """Fan out what was recorded and run one delivery task, as a worker does."""
    fan_out_pending()
    lanes.deliver_due(time_budget=1)


# --- the producer ------------------------------------------------------------------------------


def test_send_event_records_a_producer_span_and_stores_its_context(spans):
    event = send_event("order.created", {"id": 1})
    [span] = spans.get_finished_spans()
    assert span.name == "order.created publish" and span.kind == SpanKind.PRODUCER
    assert dict(span.attributes) == {
        "messaging.system": "django_webhooks",
        "messaging.operation.type": "publish",
        "messaging.destination.name": "order.created",
        "messaging.message.id": str(event.pk),
    }
    assert Event.objects.get(pk=event.pk).trace_context == traceparent_of(span) == event.trace_context


def test_the_producer_span_joins_the_callers_trace_and_keeps_its_tracestate(spans):
    caller = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "abc")]),
    )
    with trace.use_span(trace.NonRecordingSpan(caller)):
        event = send_event("order.created", {"id": 1})
    [producer] = spans.get_finished_spans()
    assert producer.parent.span_id == caller.span_id and producer.context.trace_id == caller.trace_id
    assert Event.objects.get(pk=event.pk).trace_context == f"{traceparent_of(producer)} vendor=abc"


def test_a_binding_records_its_event_under_a_producer_span(spans, customer):
    Order.objects.create(customer=customer, number="A-1", total="5.00")
    [span] = spans.get_finished_spans()
    assert span.name == "order.created publish"
    event = Event.objects.get()
    assert span.attributes["messaging.message.id"] == str(event.pk)
    assert event.trace_context == traceparent_of(span)


def test_a_bulk_send_is_one_producer_span_shared_by_its_events(spans, customer):
    orders = [Order.objects.create(customer=customer, number=f"A-{n}", total="5.00") for n in range(3)]
    spans.clear()
    events = send_events_for_queryset("order.updated", Order.objects.filter(pk__in=[o.pk for o in orders]))
    [span] = spans.get_finished_spans()
    assert span.name == "order.updated publish"
    assert span.attributes["messaging.batch.message_count"] == 3
    stored = Event.objects.filter(pk__in=[event.pk for event in events])
    assert {event.trace_context for event in stored} == {traceparent_of(span)}


def test_a_refused_event_ends_its_span_with_the_error(spans):
    with pytest.raises(InvalidPayload):
        send_event("order.created", {"total": float("nan")})
    [span] = spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["error.type"] == "django_webhooks.exceptions.InvalidPayload"
    assert not Event.objects.exists()


def test_a_broken_tracer_never_fails_the_capture(spans, monkeypatch, customer):
    def refuse(*args, **kwargs):
        raise RuntimeError("exporter misconfigured")

    monkeypatch.setattr(tracing._tracer, "start_span", refuse)
    event = send_event("order.created", {"id": 1})
    Order.objects.create(customer=customer, number="A-1", total="5.00")
    assert [e.trace_context for e in Event.objects.order_by("pk")] == ["", ""]
    assert Event.objects.filter(pk=event.pk).exists()


# --- the consumer and the HTTP client --------------------------------------------------------


def test_an_attempt_is_a_consumer_span_linked_to_the_producer_with_an_http_client_span(
    spans, receiver, make_subscription
):
    subscription = make_subscription(url=receiver.url("/hook?token=s3cret"))
    event = send_event("order.created", {"id": 1})
    deliver()
    [request] = receiver.wait_for(1)
    assert "traceparent" not in request.headers
    [producer] = only(spans, SpanKind.PRODUCER)
    [consumer] = only(spans, SpanKind.CONSUMER)
    [client] = only(spans, SpanKind.CLIENT)
    delivery = Delivery.objects.get()
    assert consumer.name == "order.created process"
    assert consumer.parent is None  # a trace of its own...
    assert linked(consumer) == [ids(producer)]  # ...linked to the event's
    assert dict(consumer.attributes) == {
        "messaging.system": "django_webhooks",
        "messaging.operation.type": "process",
        "messaging.destination.name": "order.created",
        "messaging.message.id": str(event.pk),
        "django_webhooks.delivery.id": delivery.pk,
        "django_webhooks.subscription.id": subscription.pk,
        "django_webhooks.webhook_id": delivery.message_id,
    }
    assert client.name == "POST" and client.parent.span_id == consumer.context.span_id
    assert dict(client.attributes) == {
        "http.request.method": "POST",
        "url.full": receiver.url("/hook"),
        "server.address": "127.0.0.1",
        "server.port": receiver.port,
        "http.response.status_code": 200,
    }
    assert client.status.status_code == consumer.status.status_code == StatusCode.UNSET


def test_a_retry_carries_its_resend_count_and_the_failure_its_error_type(spans, receiver, make_subscription):
    receiver.script = [Reply(503), Reply(200)]
    make_subscription(url=receiver.url())
    send_event("order.created", {"id": 1})
    deliver()
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    lanes.deliver_due(time_budget=1)
    receiver.wait_for(2)
    [producer] = only(spans, SpanKind.PRODUCER)
    first, second = sorted(only(spans, SpanKind.CLIENT), key=lambda span: span.start_time)
    assert first.attributes["http.response.status_code"] == 503 and first.attributes["error.type"] == "503"
    assert first.status.status_code == StatusCode.ERROR
    assert "http.request.resend_count" not in first.attributes
    assert second.attributes["http.request.resend_count"] == 1 and "error.type" not in second.attributes
    consumers = sorted(only(spans, SpanKind.CONSUMER), key=lambda span: span.start_time)
    assert [c.status.status_code for c in consumers] == [StatusCode.ERROR, StatusCode.UNSET]
    assert [linked(c) for c in consumers] == [[ids(producer)], [ids(producer)]]
    assert list(DeliveryAttempt.objects.order_by("attempt_number").values_list("succeeded", flat=True)) == [
        False,
        True,
    ]


def test_an_unreadable_stored_context_gives_no_link_and_the_delivery_goes_out(
    spans, receiver, make_subscription, make_delivery
):
    delivery = make_delivery(make_subscription(url=receiver.url()))
    Event.objects.filter(pk=delivery.event_id).update(trace_context="00-not-a-trace-context")
    lanes.deliver_due(time_budget=1)
    receiver.wait_for(1)
    [consumer] = only(spans, SpanKind.CONSUMER)
    assert list(consumer.links) == []
    assert DeliveryAttempt.objects.get().succeeded


def test_a_request_that_gets_no_answer_has_our_error_class_as_its_error_type(spans, make_subscription):
    make_subscription(url="http://127.0.0.1:9/hook")  # discard port: nothing listens
    send_event("order.created", {"id": 1})
    deliver()
    [client] = only(spans, SpanKind.CLIENT)
    attempt = DeliveryAttempt.objects.get()
    assert attempt.error_class and client.attributes["error.type"] == attempt.error_class
    assert "http.response.status_code" not in client.attributes
    assert client.status.status_code == StatusCode.ERROR


def test_traceparent_is_sent_to_a_subscription_that_opted_in_and_recorded(spans, receiver, make_subscription):
    subscription = make_subscription(
        url=receiver.url("/traced"), send_traceparent=True, headers={"TraceParent": "00-forged-01"}
    )
    make_subscription(url=receiver.url("/plain"))
    send_event("order.created", {"id": 1})
    deliver()
    [traced] = receiver.wait_for(1, path="/traced")
    [plain] = receiver.wait_for(1, path="/plain")
    clients = {span.attributes["url.full"]: span for span in only(spans, SpanKind.CLIENT)}
    expected = traceparent_of(clients[receiver.url("/traced")])
    assert traced.headers["traceparent"] == expected
    assert "traceparent" not in plain.headers
    StandardWebhook(current_secret(subscription)).verify(traced.body, traced.headers)
    stored = DeliveryAttempt.objects.get(subscription=subscription).request_headers
    assert stored["traceparent"] == expected
    assert "TraceParent" not in stored


def test_custom_trace_headers_give_way_to_the_request_span_whatever_their_case():
    headers = request_headers(
        {"TRACEPARENT": "forged", "X-Team": "ops"}, {"webhook-id": "msg_1"}, {"traceparent": "00-a-b-01"}
    )
    assert {name for name in headers if name.lower() == "traceparent"} == {"traceparent"}
    assert headers["traceparent"] == "00-a-b-01" and headers["X-Team"] == "ops"
    assert request_headers({"TRACEPARENT": "theirs"}, {})["TRACEPARENT"] == "theirs"


def test_senders_see_the_opt_in_change_when_the_task_refreshes(make_subscription):
    subscription = make_subscription()
    endpoints = Endpoints()
    endpoints.load([subscription], 0.0)
    assert endpoints._current[subscription.pk].send_traceparent is False
    Subscription.objects.filter(pk=subscription.pk).update(send_traceparent=True)
    endpoints.refresh([subscription.pk])
    assert endpoints._current[subscription.pk].send_traceparent is True


def test_the_api_reads_and_writes_the_opt_in(receiver):
    from django.contrib.auth import get_user_model

    api = client_for(get_user_model().objects.create(username="alice"))
    created = api.post(f"{API}/subscriptions/", {"url": receiver.url(), "event_types": ["*"]}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["send_traceparent"] is False
    path = f"{API}/subscriptions/{created.json()['id']}/"
    assert api.patch(path, {"send_traceparent": True}, format="json").json()["send_traceparent"] is True
    assert Subscription.objects.get().send_traceparent is True
    assert api.get(path).json()["send_traceparent"] is True


def test_with_the_api_but_no_sdk_nothing_is_stored_or_sent(monkeypatch, receiver, make_subscription):
    monkeypatch.setattr(tracing, "_tracer", trace.NoOpTracer())  # what an unconfigured provider gives
    make_subscription(url=receiver.url(), send_traceparent=True)
    event = send_event("order.created", {"id": 1})
    deliver()
    [request] = receiver.wait_for(1)
    assert Event.objects.get(pk=event.pk).trace_context == ""
    assert "traceparent" not in request.headers and DeliveryAttempt.objects.get().succeeded


# --- without OpenTelemetry ---------------------------------------------------------------------

WITHOUT_OPENTELEMETRY = textwrap.dedent(
    """
    import json, sys
    sys.modules["opentelemetry"] = None  # as if the tracing extra were not installed

    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)

    from django_webhooks import tracing
    from django_webhooks.capture.events import send_event
    from django_webhooks.delivery import lanes
    from django_webhooks.delivery.fanout import fan_out_pending
    from django_webhooks.models import DeliveryAttempt, Event, Subscription
    from django_webhooks.secret_store import create_secret
    from tests.receiver import Receiver

    with Receiver() as receiver:
        create_secret(Subscription.objects.create(url=receiver.url(), event_types=["*"], send_traceparent=True))
        event = send_event("order.created", {"id": 1})
        fan_out_pending()
        lanes.deliver_due(time_budget=1)
        [request] = receiver.wait_for(1)
    print(json.dumps({
        "available": tracing.AVAILABLE,
        "loaded": sorted(name for name in sys.modules if name.startswith("opentelemetry") and sys.modules[name]),
        "trace_context": Event.objects.get(pk=event.pk).trace_context,
        "succeeded": DeliveryAttempt.objects.get().succeeded,
        "received": sorted(request.headers),
    }))
    """
)


def test_without_opentelemetry_events_are_recorded_and_sent_untraced(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "SQLITE_PATH"}}
    env.update(DJANGO_SETTINGS_MODULE="tests.settings", SQLITE_PATH=str(tmp_path / "untraced.sqlite3"))
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_OPENTELEMETRY], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    outcome = json.loads(run.stdout.strip().splitlines()[-1])
    assert outcome["available"] is False and outcome["loaded"] == []
    assert outcome["trace_context"] == "" and outcome["succeeded"] is True
    assert "webhook-signature" in outcome["received"] and "traceparent" not in outcome["received"]
    assert "asks for the traceparent header, but opentelemetry-api is not installed" in run.stderr

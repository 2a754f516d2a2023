"""The webhook admin through the Django test client, one module per django_webhooks/admin/ module.

Helpers the modules share; the fixtures are in conftest.py.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_webhooks.catalog import invalidate_catalog
from django_webhooks.models import Delivery, DeliveryAttempt, Event

SIGNATURE = "v1,c2lnbmF0dXJlLXZhbHVlLW5ldmVyLXNob3du"


def url(name: str, *args) -> str:
    return reverse(f"admin:django_webhooks_{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def add_attempt(delivery, *, succeeded=True, status=200, error_class="", duration_ms=40, **fields):
    return DeliveryAttempt.objects.create(
        delivery=delivery,
        subscription=delivery.subscription,
        attempt_number=fields.pop("attempt_number", delivery.attempts + 1),
        url=delivery.subscription.url,
        request_headers={"webhook-id": delivery.message_id, "webhook-signature": SIGNATURE, "X-Team": "billing"},
        response_status=status,
        response_headers={"Content-Type": "text/plain"},
        response_body=fields.pop("response_body", "ok"),
        duration_ms=duration_ms,
        error_class=error_class,
        succeeded=succeeded,
        **fields,
    )


def changelist_rows(response) -> list:
    return list(response.context["cl"].result_list)


def offered_actions(response) -> set[str]:
    form = response.context["action_form"]
    return {choice for choice, _label in form.fields["action"].choices} if form else set()


def _bulk_log(subscriptions, count: int) -> None:
    now = timezone.now()
    events = Event.objects.bulk_create(
        Event(event_type="order.created", payload={"n": n}, body='{"n": 1}', created_at=now - timedelta(seconds=n))
        for n in range(count)
    )
    deliveries = Delivery.objects.bulk_create(
        Delivery(event=event, subscription=subscriptions[n % len(subscriptions)], created_at=event.created_at)
        for n, event in enumerate(events)
    )
    DeliveryAttempt.objects.bulk_create(
        DeliveryAttempt(
            delivery=d,
            subscription=d.subscription,
            attempt_number=1,
            url=d.subscription.url,
            response_status=200,
            succeeded=True,
            duration_ms=30,
            created_at=d.created_at,
        )
        for d in deliveries
    )


def _queries(client, path: str) -> int:
    invalidate_catalog()  # the event type filter reads the cached catalog; make every request load it
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    return len(queries)


def action(client, name: str, objects, model: str = "subscription", **extra):
    data = {"action": name, "_selected_action": [o.pk for o in objects], "index": 0, **extra}
    return client.post(url(f"{model}_changelist"), data, follow=True)

"""Helpers for your own test suite: what would be sent, and the queue drained inside the test.

Events are rows as soon as ``save()`` or ``send_event()`` returns, in your test's transaction
too, so nothing is needed to *see* them. Fan-out and delivery normally run in django-q2
workers; :func:`drain` runs them in the calling thread, and :func:`capture_webhooks` keeps the
requests in memory instead of sending them::

    from django_webhooks import testing

    def test_paying_an_order_sends_a_webhook(db, order):
        with testing.capture_webhooks() as sent:
            order.pay()
            testing.drain()
        assert [webhook.event_type for webhook in sent] == ["order.paid"]

Nothing here changes how the library behaves unless you call it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from unittest import mock

from .delivery import fanout, lanes
from .delivery.transport import TransportResult

__all__ = ["SentWebhook", "capture_webhooks", "drain"]

#: Seconds one delivery round of :func:`drain` may take (it also waits this long at most for a
#: retry falling due).
DRAIN_ROUND_SECONDS = 1.0


@dataclass(frozen=True)
class SentWebhook:
    """One request the delivery engine made (or, under :func:`capture_webhooks`, would have made)."""

    url: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def event_type(self) -> str:
        return self.json["type"]

    @property
    def data(self) -> Any:
        return self.json["data"]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class _RecordingTransport:
    """Stands in for :class:`~django_webhooks.delivery.transport.Transport`: records, answers ``status``."""

    def __init__(self, sent: list[SentWebhook], status: int) -> None:
        self.sent = sent
        self.status = status

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> TransportResult:
        self.sent.append(SentWebhook(url, dict(headers), bytes(body)))
        return TransportResult(status=self.status)


@contextmanager
def capture_webhooks(status: int = 200) -> Iterator[list[SentWebhook]]:
    """Record webhook requests instead of sending them; each is answered with ``status``.

    Yields the list the requests are appended to (signed, with their exact body) while the block
    runs. Use :func:`drain` inside the block to deliver.
    """
    sent: list[SentWebhook] = []
    transport = _RecordingTransport(sent, status)
    with mock.patch.object(lanes, "get_transport", lambda: transport):
        yield sent


def drain(max_rounds: int = 20) -> int:
    """Fan out every pending event and deliver everything due, in this thread; returns how many
    requests were made. Retries scheduled for later are left pending."""
    total = 0
    for _ in range(max_rounds):
        fanned_out = fanout.fan_out_all_pending()
        sent = lanes.deliver_due(time_budget=DRAIN_ROUND_SECONDS)
        total += sent
        if not fanned_out and not sent:
            break
    return total

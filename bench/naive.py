"""The obvious design, for comparison: post_save enqueues one django-q2 task that POSTs the order.

It is what the Django peers do (see ../shared/REFERENCE.md), with their failings left out that
would make it look better than it is (it signs, and it uses a timeout).
"""

from __future__ import annotations

import json
import time

import requests
from django.apps import AppConfig
from django.db.models.signals import post_save

from django_webhooks.capture.payloads import model_payload
from django_webhooks.signing import webhook_headers

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def post_order(order_id: int, url: str) -> int:
    from example_project.shop.models import Order

    order = Order.objects.get(pk=order_id)
    body = json.dumps({"type": "order.created", "data": model_payload(order)}).encode()
    headers = webhook_headers(f"msg_naive{order_id}", int(time.time()), body, [SECRET])
    headers["Content-Type"] = "application/json"
    return requests.post(url, data=body, headers=headers, timeout=(5, 15), allow_redirects=False).status_code


def on_order_saved(sender, instance, created, **kwargs):
    import os

    from django_q.tasks import async_task

    if created:
        async_task("bench.naive.post_order", instance.pk, os.environ["BENCH_TARGET_URL"])


class NaiveConfig(AppConfig):
    name = "bench.naive"
    label = "bench_naive"

    def ready(self) -> None:
        post_save.connect(on_order_saved, sender="shop.Order", dispatch_uid="bench-naive")

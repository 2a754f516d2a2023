"""The shop's demo receiver: verifies what the shop's own webhooks deliver and shows it.

A real receiver would live in another project; here it runs in the same one so the demo works
on a laptop without internet. The secret is looked up from the subscription that points at
the receiver, exactly as a customer would paste it from the API into their own settings.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from django_webhooks import secret_store
from django_webhooks.models import Subscription
from django_webhooks.portal.links import portal_link
from django_webhooks.receiving import verify_webhook

from .models import Order, ReceivedWebhook

RECENT = 50


def receiver_secrets(request: HttpRequest) -> list[str]:
    """Signing secrets of every subscription whose URL ends in this receiver's path."""
    path = request.path
    secrets: list[str] = []
    for subscription in Subscription.objects.filter(url__endswith=path).prefetch_related("secrets"):
        secrets.extend(secret_store.signing_secrets(subscription))
    return secrets


@verify_webhook(secret=receiver_secrets)
def accept(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(status=204)


def _event_type(body: bytes) -> str:
    try:
        envelope = json.loads(body)
    except ValueError:
        return ""
    return str(envelope.get("type", "")) if isinstance(envelope, dict) else ""


@csrf_exempt
def receive(request: HttpRequest, name: str) -> HttpResponse:
    """Record every POST to ``/receiver/<name>/``; answer 204 if its signature verifies, else 400."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    response = accept(request, name)
    verified = response.status_code < 400
    ReceivedWebhook.objects.create(
        receiver=name,
        verified=verified,
        rejection="" if verified else response.content.decode("utf-8", "replace")[:255],
        webhook_id=request.headers.get("webhook-id", "")[:100],
        event_type=_event_type(request.body)[:200],
        headers={key: value for key, value in request.headers.items() if key.lower().startswith("webhook-")},
        body=request.body.decode("utf-8", "replace"),
    )
    return response


def received(request: HttpRequest) -> HttpResponse:
    """The most recent arrivals, newest first."""
    webhooks = ReceivedWebhook.objects.all()[:RECENT]
    return render(request, "shop/received.html", {"webhooks": webhooks, "limit": RECENT})


@login_required
def account(request: HttpRequest) -> HttpResponse:
    """The customer's own page in the shop: their orders, and the way to their webhooks."""
    orders = Order.objects.filter(customer__user=request.user).order_by("-pk")
    return render(request, "shop/account.html", {"orders": orders})


@login_required
@require_POST
def webhooks_link(request: HttpRequest) -> HttpResponse:
    """The other way in: what a product whose customers sign in elsewhere does, a signed one-time link."""
    return redirect(portal_link(request.user, expires_in=300, scope=request.POST.get("scope", "full")))

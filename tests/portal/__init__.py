"""The customer portal (django_webhooks/portal/), one module per portal module, plus the isolation
matrix and a Chromium walk. Fixtures are in conftest.py."""

from __future__ import annotations

from django.contrib.messages import get_messages
from django.urls import reverse


def url(name: str, *args) -> str:
    return reverse(f"django_webhooks_portal:{name}", args=args)


def messages_of(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]

"""Tests of the REST API (django_webhooks/api/)."""

from __future__ import annotations

from rest_framework.test import APIClient

#: Where tests/urls.py (like a project) mounts ``django_webhooks.api.urls``.
API = "/api/webhooks"


def client_for(user) -> APIClient:
    """DRF's APIClient authenticated as ``user``."""
    api = APIClient()
    api.force_authenticate(user)
    return api

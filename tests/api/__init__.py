"""Tests of the REST API (django_webhooks/api/)."""

from __future__ import annotations

from rest_framework.test import APIClient

#: Where tests/urls.py (like a project) mounts ``django_webhooks.api.urls``.
API = "/api/webhooks"
#: drf-spectacular settings for a document of the API alone, for modules that read it while tests are
#: collected: the event catalog's webhooks read the EventType table, which is not open yet
#: (tests/api/test_openapi_webhooks.py covers them).
API_ONLY = {"POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums"]}


def client_for(user) -> APIClient:
    """DRF's APIClient authenticated as ``user``."""
    api = APIClient()
    api.force_authenticate(user)
    return api


def assert_schema_pages_are_served() -> None:
    """The OpenAPI document at /api/schema/ and its Swagger UI and ReDoc pages, which load their
    assets from drf-spectacular-sidecar's static files rather than a CDN (tests/urls.py and
    example_project/urls.py mount them alike)."""
    api = APIClient()
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/webhooks/subscriptions/{id}/rotate-secret/" in schema.json()["paths"]
    for page in ("/api/schema/swagger-ui/", "/api/schema/redoc/"):
        html = api.get(page).content.decode()
        assert "static/drf_spectacular_sidecar/" in html
        assert "cdn.jsdelivr.net" not in html

"""The metrics view: who may read it, and what it returns."""

from __future__ import annotations

import pytest

from django_webhooks.metrics.views import token_matches

pytestmark = pytest.mark.django_db

TOKEN = "x" * 40


@pytest.fixture
def with_token(settings):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "METRICS_TOKEN": TOKEN}


def test_anonymous_is_forbidden(client, with_token):
    assert client.get("/metrics/").status_code == 403


def test_a_user_who_is_not_staff_is_forbidden(client, django_user_model):
    client.force_login(django_user_model.objects.create(username="customer"))
    assert client.get("/metrics/").status_code == 403


def test_staff_read_the_exposition(staff_client):
    response = staff_client.get("/metrics/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    assert b"django_webhooks_oldest_due_delivery_age_seconds" in response.content
    assert "no-cache" in response["Cache-Control"]


def test_the_token_reads_the_exposition(client, with_token):
    response = client.get("/metrics/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert b"django_webhooks_deliveries_pending" in response.content


@pytest.mark.parametrize("header", [f"Bearer {TOKEN}x", "Bearer ", f"Basic {TOKEN}", TOKEN])
def test_a_wrong_token_is_forbidden(client, with_token, header):
    assert client.get("/metrics/", headers={"Authorization": header}).status_code == 403


def test_without_a_configured_token_no_bearer_gets_in(client):
    assert client.get("/metrics/", headers={"Authorization": "Bearer "}).status_code == 403
    assert not token_matches("Bearer ")


def test_openmetrics_when_the_scraper_asks_for_it(staff_client):
    response = staff_client.get("/metrics/", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.rstrip().endswith(b"# EOF")


def test_only_get(staff_client):
    assert staff_client.post("/metrics/").status_code == 405

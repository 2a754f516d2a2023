"""The OpenAPI document (django_webhooks/api/schema.py) and schemathesis against it.

schemathesis generates requests for every operation of the generated schema, sends them to the
example project's WSGI app as an authenticated customer who owns real objects, and checks that
no response is a 5xx or strays from the schema (status code, content type, headers, body).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from rest_framework.test import APIClient
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from django_webhooks.models import DeliveryAttempt, DeliveryStatus, Event
from tests.api import API

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Examples per operation and generation mode; about 20 operations finish in a couple of minutes.
MAX_EXAMPLES = 25


def generated_schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def walk(node, path=()):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, (*path, index))


def test_every_field_and_parameter_is_described():
    schema = generated_schema()
    undescribed = [
        "/".join(map(str, path))
        for path, node in walk(schema["components"]["schemas"])
        if len(path) >= 3 and path[-2] == "properties" and not node.get("description") and "$ref" not in node
    ]
    undescribed += [
        f"{method} {url} {parameter['name']}"
        for url, operations in schema["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", [])
        if not parameter.get("description")
    ]
    assert undescribed == []


def test_every_operation_documents_its_errors_and_needs_authentication():
    schema = generated_schema()
    operations = [
        (method, url, operation)
        for url, operations in schema["paths"].items()
        if url.startswith(f"{API}/")
        for method, operation in operations.items()
    ]
    assert len(operations) == 20
    for method, url, operation in operations:
        assert {"400", "401", "403", "404", "429"} <= set(operation["responses"]), (method, url)
        assert {"basicAuth", "cookieAuth"} <= {name for entry in operation["security"] for name in entry}
        assert {} not in operation["security"], (method, url)


def test_secret_fields_appear_only_where_secrets_are_returned():
    schema = generated_schema()
    components = schema["components"]["schemas"]
    assert "secret" not in components["Subscription"]["properties"]
    assert "secret" in components["SubscriptionRequest"]["properties"]
    assert "secret" in components["Secret"]["properties"]


def test_the_example_project_serves_the_schema_and_its_documentation_pages():
    api = APIClient()
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/webhooks/subscriptions/{id}/rotate-secret/" in schema.json()["paths"]
    for page in ("/api/schema/swagger-ui/", "/api/schema/redoc/"):
        html = api.get(page).content.decode()
        assert "static/drf_spectacular_sidecar/" in html
        assert "cdn.jsdelivr.net" not in html


# -- schemathesis ------------------------------------------------------------------------------------


def load_schema():
    from example_project.wsgi import application

    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES)
    return schema


schema = load_schema()


@pytest.fixture
def web_app(db):
    """Let the WSGI app's requests share the test's database transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in (request_started, request_finished):
            signal.connect(close_old_connections)


@pytest.fixture
def customer(web_app, make_subscription, make_delivery, receiver):
    """An owner with a subscription, an event, a delivery and an attempt; the ids to aim at."""
    user = get_user_model().objects.create_user("customer", password="customer-pass")
    subscription = make_subscription(receiver.url("/hook"), owner_id=str(user.pk), event_types=["order.*"])
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    Event.objects.filter(pk=delivery.event_id).update(owner_id=str(user.pk))
    DeliveryAttempt.objects.create(
        delivery=delivery, subscription=subscription, attempt_number=1, url=subscription.url, response_status=500
    )
    ids = {"subscriptions": subscription.pk, "events": delivery.event_id, "deliveries": delivery.pk}
    with override_settings(
        DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "API_THROTTLE_RATES": {}, "CONNECT_TIMEOUT": 1, "TIMEOUT": 2}
    ):
        yield ids


def aim_at_real_objects(case, ids: dict[str, int]) -> None:
    """Send about half of the generated ids to the customer's own objects, so detail
    endpoints and actions run their real code paths and not only the 404."""
    parameters = case.path_parameters or {}
    if "id" in parameters and isinstance(parameters["id"], int) and parameters["id"] % 2 == 0:
        resource = case.operation.path.removeprefix(f"{API}/").split("/")[0]
        parameters["id"] = ids[resource]
    if "name" in parameters and isinstance(parameters["name"], str) and len(parameters["name"]) % 2 == 0:
        parameters["name"] = "order.created"


@pytest.mark.schemathesis
@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(case, customer):
    aim_at_real_objects(case, customer)
    # Negative mode invents extra headers; a made-up Host is refused by Django's ALLOWED_HOSTS
    # (an HTML 400) before any API code runs, so it says nothing about the API.
    for name in [name for name in case.headers or {} if name.lower() == "host"]:
        del case.headers[name]
    case.call_and_validate(headers={"Authorization": "Basic Y3VzdG9tZXI6Y3VzdG9tZXItcGFzcw=="}, checks=CHECKS)

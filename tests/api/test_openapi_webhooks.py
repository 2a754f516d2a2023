"""The event catalog as OpenAPI 3.1 webhooks (django_webhooks/api/webhooks_schema.py,
embedded_schemas.py), the webhooks_openapi command, and the API's request examples.

Every document is checked with openapi-spec-validator; catalog schemas are checked by
validating the same data with the catalog's own rule and through the document.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.hooks import postprocess_schema_enums
from drf_spectacular.settings import spectacular_settings
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from rest_framework.test import APIClient

from django_webhooks import catalog, receiving
from django_webhooks.api.webhooks_schema import EXAMPLE_MESSAGE_ID, EXAMPLE_SECRET, EXAMPLE_TIME
from django_webhooks.delivery import claiming, fanout, lanes
from django_webhooks.delivery.operations import TEST_EVENT_TYPE
from django_webhooks.models import Delivery, EventType, Subscription
from tests.api import API, client_for

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
STANDARD = "application/json"
CLOUDEVENTS = "application/cloudevents+json"


def served_schema() -> dict:
    """The document as a project serves it (tests/urls.py: /api/schema/)."""
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def validator_for_pointer(document: dict, pointer: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator of the schema at ``pointer``, its references resolved in ``document``
    (the document's other keys are not keywords, so the root validates nothing else)."""
    return Draft202012Validator({**document, "$ref": pointer})


def media_validator(document: dict, event_type: str, media_type: str = STANDARD) -> Draft202012Validator:
    content = document["webhooks"][event_type]["post"]["requestBody"]["content"][media_type]
    return validator_for_pointer(document, content["schema"]["$ref"])


def listed_event_types(user) -> set[str]:
    response = client_for(user).get(f"{API}/event-types/")
    assert response.status_code == 200
    return {entry["name"] for entry in response.json()}


# -- the document -------------------------------------------------------------------------------------


def test_the_served_schema_is_valid_openapi_3_1_with_every_catalog_type_as_a_webhook(alice):
    EventType.objects.create(name="invoice.paid", description="An invoice was paid (a row, not a setting).")
    EventType.objects.create(name="invoice.legacy", description="No longer sent.", archived=True)
    EventType.objects.create(name="order.updated", archived=True)  # archives a declared type

    document = served_schema()

    validate(document)
    assert document["openapi"].startswith("3.1")
    listed = listed_event_types(alice)
    assert set(document["webhooks"]) == listed
    assert {"invoice.paid", "order.created", "webhook.endpoint.failing"} <= listed
    assert not {"invoice.legacy", "order.updated"} & listed
    assert "/api/webhooks/subscriptions/" in document["paths"]


def test_a_webhook_documents_the_envelope_headers_example_and_answers():
    document = served_schema()
    operation = document["webhooks"]["order.created"]["post"]

    assert operation["description"].startswith("An order was placed.")
    headers = {parameter["name"]: parameter for parameter in operation["parameters"]}
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= {
        name for name, parameter in headers.items() if parameter["required"] and parameter["in"] == "header"
    }
    content = operation["requestBody"]["content"]
    assert set(content) == {STANDARD, CLOUDEVENTS}
    example = content[STANDARD]["example"]
    assert example == {
        "type": "order.created",
        "timestamp": "2025-03-01T08:00:00Z",
        "data": {"id": 1, "number": "A-1001", "total": "25.00", "status": "new"},
    }
    assert media_validator(document, "order.created").is_valid(example)
    assert media_validator(document, "order.created", CLOUDEVENTS).is_valid(content[CLOUDEVENTS]["example"])
    assert not media_validator(document, "order.created").is_valid({**example, "type": "order.deleted"})
    responses = operation["responses"]
    assert {"2XX", "410", "408", "429", "5XX", "default"} <= set(responses)
    assert "disabled" in responses["410"]["description"]
    assert "not retried" in responses["default"]["description"]


def test_the_example_signature_verifies_with_the_documented_secret():
    """Customers can test their verification code on the example: the headers sign the body as sent."""
    operation = served_schema()["webhooks"]["order.created"]["post"]
    headers = {parameter["name"]: parameter.get("example") for parameter in operation["parameters"]}
    body = json.dumps(operation["requestBody"]["content"][STANDARD]["example"], separators=(",", ":")).encode()

    assert headers["webhook-id"] == EXAMPLE_MESSAGE_ID
    receiving.verify(headers, body, EXAMPLE_SECRET, now=EXAMPLE_TIME)
    with pytest.raises(receiving.SignatureVerificationError):
        receiving.verify(headers, body.replace(b"A-1001", b"A-1002"), EXAMPLE_SECRET, now=EXAMPLE_TIME)


def test_what_an_endpoint_receives_matches_its_webhook_in_every_body_format(alice, receiver, make_subscription):
    """Real requests (fan-out, signing, transport to a loopback receiver) validate against the document."""
    from django_webhooks.capture.events import send_event

    standard = make_subscription(receiver.url("/standard"), owner_id=str(alice.pk), event_types=["order.*"])
    cloudevents = make_subscription(
        receiver.url("/cloudevents"), owner_id=str(alice.pk), event_types=["order.*"], payload_format="cloudevents"
    )
    send_event("order.created", {"id": 7, "number": "A-1007", "total": "9.90", "status": "new"}, owner=alice)
    fanout.fan_out_pending()
    for subscription in (standard, cloudevents):
        lane = claiming.lease_lane(subscription, list(Delivery.objects.filter(subscription=subscription)))
        assert [attempt.succeeded for attempt in lanes.deliver_lane(lane)] == [True]

    document = served_schema()
    operation = document["webhooks"]["order.created"]["post"]
    required = {parameter["name"] for parameter in operation["parameters"] if parameter["required"]}
    for path, media_type in (("/standard", STANDARD), ("/cloudevents", CLOUDEVENTS)):
        (request,) = receiver.received(path)
        headers = {name.lower(): value for name, value in request.headers.items()}
        assert required <= set(headers), path
        assert headers["content-type"].startswith(media_type)
        assert media_type in operation["requestBody"]["content"]
        errors = list(media_validator(document, "order.created", media_type).iter_errors(json.loads(request.body)))
        assert errors == [], path


def test_a_thin_type_documents_the_reference_it_sends():
    types = {"order.shipped": {"description": "Shipped.", "thin": True, "example": {"id": 5, "secret": "x"}}}
    with override_settings(
        DJANGO_WEBHOOKS={"EVENT_TYPES": types, "THIN_PAYLOAD_URL": "https://shop.test/{type}/{id}/"}
    ):
        document = served_schema()
    validate(document)
    example = document["webhooks"]["order.shipped"]["post"]["requestBody"]["content"][STANDARD]["example"]
    assert example["data"] == {"id": 5, "type": "order.shipped", "url": "https://shop.test/order.shipped/5/"}
    assert media_validator(document, "order.shipped").is_valid(example)
    assert not media_validator(document, "order.shipped").is_valid({**example, "data": {"id": 5}})


def test_versions_are_mentioned_and_the_current_schema_is_shown():
    types = {
        "order.paid": {
            "description": "Paid.",
            "version": 2,
            "schema": {"type": "object", "required": ["amount"]},
            "example": {"amount": {"value": "1.00", "currency": "EUR"}},
            "versions": {1: {"schema": {"type": "object"}, "converter": "builtins.dict"}},
        }
    }
    with override_settings(DJANGO_WEBHOOKS={"EVENT_TYPES": types}):
        document = served_schema()
    validate(document)
    operation = document["webhooks"]["order.paid"]["post"]
    assert "version 2" in operation["description"] and "event_versions" in operation["description"]
    assert document["components"]["schemas"]["webhook-order.paid-data"]["required"] == ["amount"]


def test_without_a_schema_data_is_inferred_from_the_example_or_left_free():
    types = {
        "note.added": {"description": "A note.", "example": {"id": 1, "tags": ["a"], "done": False, "at": None}},
        "note.removed": {"description": "Gone."},
    }
    with override_settings(DJANGO_WEBHOOKS={"EVENT_TYPES": types}):
        document = served_schema()
    validate(document)
    schemas = document["components"]["schemas"]
    assert schemas["webhook-note.added-data"]["properties"] == {
        "id": {"type": "integer"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "done": {"type": "boolean"},
        "at": {"type": "null"},
    }
    data = validator_for_pointer(document, "#/components/schemas/webhook-note.added-data")
    assert data.is_valid({"id": 2, "tags": [], "done": True, "at": None})
    assert not data.is_valid({"id": "2"})
    assert "example" not in document["webhooks"]["note.removed"]["post"]["requestBody"]["content"][STANDARD]
    assert validator_for_pointer(document, "#/components/schemas/webhook-note.removed-data").is_valid([1, "x"])


# -- catalog schemas of other drafts ---------------------------------------------------------------

DRAFT_7 = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "$id": "https://shop.example.com/schemas/invoice.json",
    "type": "object",
    "required": ["id", "billing"],
    "properties": {
        "id": {"type": "integer"},
        "billing": {"$ref": "#/definitions/address"},
        "shipping": {"$ref": "https://shop.example.com/schemas/invoice.json#/definitions/address"},
        "lines": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}], "additionalItems": False},
        "$id": {"type": "string", "description": "A property named like a keyword stays a property."},
        "coupon": {"type": "string"},
    },
    "dependencies": {"coupon": ["discount"], "discount": {"required": ["coupon"]}},
    "definitions": {"address": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}},
}
DRAFT_4 = {
    "$schema": "http://json-schema.org/draft-04/schema#",
    "id": "urn:example:measure",
    "type": "object",
    "properties": {"value": {"type": "number", "maximum": 10, "exclusiveMaximum": True, "minimum": 0}},
}
RECURSIVE = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "children": {"type": "array", "items": {"$ref": "#"}}},
    "$defs": {"unused": {"$ref": "#/properties/name"}},
}
#: Instances each schema accepts or refuses (the catalog's own validation says which).
INSTANCES = {
    "invoice.issued": [
        {"id": 1, "billing": {"city": "Oslo"}},
        {"id": 1, "billing": {"city": "Oslo"}, "lines": ["a", 2], "shipping": {"city": "Bergen"}, "$id": "x"},
        {"id": 1, "billing": {}},
        {"id": 1, "billing": {"city": "Oslo"}, "shipping": {"city": 5}},
        {"id": 1, "billing": {"city": "Oslo"}, "lines": ["a", 2, 3]},
        {"id": 1, "billing": {"city": "Oslo"}, "lines": [1]},
        {"id": 1, "billing": {"city": "Oslo"}, "$id": 5},
        {"id": 1, "billing": {"city": "Oslo"}, "coupon": "SPRING"},
        {"id": 1, "billing": {"city": "Oslo"}, "coupon": "SPRING", "discount": 5},
        {"id": 1, "billing": {"city": "Oslo"}, "discount": 5},
    ],
    "measure.taken": [{"value": 9.5}, {"value": 10}, {"value": 0}, {"value": -1}],
    "tree.grown": [
        {"name": "root", "children": [{"name": "leaf", "children": []}]},
        {"name": "root", "children": [{"name": 1}]},
        {"name": "root", "children": [{"children": []}]},
    ],
}
DRAFT_TYPES = {
    "invoice.issued": {"description": "Draft 7.", "schema": DRAFT_7},
    "measure.taken": {"description": "Draft 4.", "schema": DRAFT_4},
    "tree.grown": {"description": "2020-12, recursive.", "schema": RECURSIVE},
}


def test_schemas_of_other_drafts_validate_the_same_data_through_the_document():
    with override_settings(DJANGO_WEBHOOKS={"EVENT_TYPES": DRAFT_TYPES}):
        document = served_schema()
        expected = {
            name: [catalog.schema_errors(DRAFT_TYPES[name]["schema"], instance) == [] for instance in instances]
            for name, instances in INSTANCES.items()
        }
    validate(document)
    schemas = document["components"]["schemas"]
    invoice = schemas["webhook-invoice.issued-data"]
    assert not {"$schema", "$id", "definitions", "dependencies"} & set(invoice)
    assert "$id" in invoice["properties"]
    assert "id" not in schemas["webhook-measure.taken-data"]
    for name, instances in INSTANCES.items():
        data = validator_for_pointer(document, f"#/components/schemas/webhook-{name}-data")
        assert [data.is_valid(instance) for instance in instances] == expected[name], name
    assert expected["invoice.issued"] == [True, True, False, False, False, False, False, False, True, False]
    assert expected["measure.taken"] == [True, False, True, False]


def test_a_schema_that_cannot_be_shown_leaves_a_valid_document_and_a_warning(capsys):
    draft_3 = {"$schema": "http://json-schema.org/draft-03/schema#", "properties": {"id": {"required": True}}}
    assert catalog.json_schema_problem(draft_3) is None  # the catalog takes it
    with override_settings(DJANGO_WEBHOOKS={"EVENT_TYPES": {"legacy.sent": {"schema": draft_3}}}):
        document = SchemaGenerator().get_schema(request=None, public=True)
    validate(document)
    assert "not shown" in document["components"]["schemas"]["webhook-legacy.sent-data"]["description"]
    assert "legacy.sent" in capsys.readouterr().err


def test_with_openapi_3_0_the_hook_adds_nothing_and_warns(monkeypatch, capsys):
    monkeypatch.setattr(spectacular_settings, "OAS_VERSION", "3.0.3")
    document = SchemaGenerator().get_schema(request=None, public=True)
    assert "webhooks" not in document
    validate(document)
    assert "OAS_VERSION" in capsys.readouterr().err


# -- the export command -------------------------------------------------------------------------------


def test_the_command_exports_the_api_schema_with_the_webhooks(tmp_path):
    EventType.objects.create(name="invoice.paid", description="A row.")
    target = tmp_path / "openapi.json"
    call_command("webhooks_openapi", "--format", "json", "--file", str(target), stdout=io.StringIO())
    document = json.loads(target.read_text())
    validate(document)
    assert "/api/webhooks/subscriptions/" in document["paths"]
    assert set(document["webhooks"]) == set(catalog.known_event_types())


def test_the_command_adds_the_webhooks_where_the_settings_do_not(monkeypatch):
    monkeypatch.setattr(spectacular_settings, "OAS_VERSION", "3.0.3")
    monkeypatch.setattr(spectacular_settings, "POSTPROCESSING_HOOKS", [postprocess_schema_enums])
    out = io.StringIO()
    call_command("webhooks_openapi", stdout=out)
    document = yaml.safe_load(out.getvalue())
    validate(document)
    assert document["openapi"].startswith("3.1") and "order.created" in document["webhooks"]
    assert spectacular_settings.OAS_VERSION == "3.0.3"  # patched for the command only


def test_the_command_exports_the_webhooks_alone():
    out = io.StringIO()
    call_command("webhooks_openapi", "--webhooks-only", stdout=out)
    document = yaml.safe_load(out.getvalue())
    validate(document)
    assert "paths" not in document
    assert set(document["webhooks"]) == set(catalog.known_event_types())
    assert set(document["components"]["schemas"]) == {
        f"webhook-{name}{suffix}" for name in document["webhooks"] for suffix in ("", "-data", "-cloudevent")
    }


def test_the_example_projects_document_is_valid_and_lists_its_catalog(tmp_path):
    """The demo (example_project.settings) on a fresh SQLite file: migrate, then export."""
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL", "TEST_DB_NAME")}
    env.update(DJANGO_SETTINGS_MODULE="example_project.settings", SQLITE_PATH=str(tmp_path / "demo.sqlite3"))
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
    done = subprocess.run(
        [*manage, "webhooks_openapi", "--format", "json"], cwd=ROOT, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    document = json.loads(done.stdout)
    validate(document)
    assert {"order.created", "webhook.endpoint.disabled"} <= set(document["webhooks"])
    assert "/api/webhooks/subscriptions/" in document["paths"]


# -- the API's request examples ("Try it out") --------------------------------------------------------


def request_examples(document: dict) -> list[tuple[str, str, str, object]]:
    """(method, path, example name, value) of every request body example of the API."""
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get(STANDARD)
            if content is None:
                continue
            examples = content.get("examples", {})
            assert examples, f"{method.upper()} {path} has no request example: Swagger UI would invent one"
            found.extend((method, path, name, example["value"]) for name, example in examples.items())
    return found


def test_every_request_example_of_the_api_succeeds_as_it_is(alice, receiver, make_subscription):
    """What Swagger UI's "Try it out" sends unchanged, on one of the user's subscriptions."""
    document = served_schema()
    examples = request_examples(document)
    assert {(method, path) for method, path, _, _ in examples} >= {
        ("post", f"{API}/subscriptions/"),
        ("post", f"{API}/subscriptions/{{id}}/test/"),
        ("post", f"{API}/subscriptions/{{id}}/recover/"),
    }
    client = client_for(alice)
    for method, path, name, value in examples:
        subscription = make_subscription(receiver.url("/hook"), owner_id=str(alice.pk), event_types=["order.*"])
        response = getattr(client, method)(path.replace("{id}", str(subscription.pk)), value, format="json")
        assert 200 <= response.status_code < 300, (method, path, name, response.json())
        if path.endswith("/test/"):
            assert response.json()["succeeded"] is True
            assert json.loads(receiver.received()[-1].body)["type"] == TEST_EVENT_TYPE
    assert Subscription.objects.filter(owner_id=str(alice.pk), event_types=["*"]).exists()


def test_without_the_catalog_table_the_webhooks_come_from_the_settings(monkeypatch, caplog):
    from django.db import OperationalError

    from django_webhooks.api.webhooks_schema import catalog_webhooks

    real = catalog.published_event_types

    def no_table(*, rows: bool = True):
        if rows:
            raise OperationalError("no such table: django_webhooks_eventtype")
        return real(rows=False)

    monkeypatch.setattr(catalog, "published_event_types", no_table)
    found = catalog_webhooks()
    assert set(found.webhooks) == set(real(rows=False))
    assert "order.created" in found.webhooks and "webhook.endpoint.failing" in found.webhooks
    assert "could not be read" in caplog.text


def test_check_deploy_passes_before_migrate(tmp_path):
    """drf-spectacular's deploy check generates the schema; on a database without our tables it must
    not fail (the catalog falls back to the settings)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "SQLITE_PATH": str(tmp_path / "empty.sqlite3")}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert "drf_spectacular.E001" not in output and "drf_spectacular.W" not in output, output
    assert "the OpenAPI webhooks list the EVENT_TYPES setting" in output

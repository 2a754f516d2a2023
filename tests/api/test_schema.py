"""The OpenAPI document (django_webhooks/api/schema.py) and schemathesis against it.

schemathesis generates requests for every operation of the generated schema, sends them to the
test project's WSGI app (tests/urls.py) as an authenticated customer who owns real objects, and
checks that no response is a 5xx or strays from the schema (status code, content type, headers,
body).
Two runs: every operation on its own (examples, coverage and fuzzing phases, valid and invalid
data), and stateful scenarios that follow the links schemathesis infers between operations
(create a subscription, then rotate, test, disable it...). Both mix in the inputs that once
gave 5xx and that schemathesis does not generate by itself: crafted cursors, lone surrogates,
NUL characters, deep nesting, numbers out of range.

``DWH_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and phase (and the stateful
scenarios); the default keeps the module to a couple of minutes on a 2-core machine, CI's
PostgreSQL leg runs the long form with more.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
import schemathesis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ensure_resource_availability,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    use_after_free,
)

from django_webhooks.capture.payloads import MAX_JSON_DEPTH
from django_webhooks.models import DeliveryAttempt, DeliveryStatus, Event
from tests.api import API, API_ONLY, assert_schema_pages_are_served

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: The stateful run also checks that what was deleted is gone and what was created can be fetched.
STATEFUL_CHECKS = [*CHECKS, use_after_free, ensure_resource_availability]
#: Examples per operation and phase, and stateful scenarios; see the module's docstring.
MAX_EXAMPLES = int(os.environ.get("DWH_SCHEMATHESIS_EXAMPLES") or 100)
#: Calls per stateful scenario at most.
STATEFUL_STEPS = 8
CUSTOMER_AUTHORIZATION = {"Authorization": "Basic Y3VzdG9tZXI6Y3VzdG9tZXItcGFzcw=="}  # customer:customer-pass


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


def test_every_field_and_parameter_is_described(db):  # db: the document reads the event catalog
    schema = generated_schema()
    # The catalog's own JSON Schemas (the webhooks' data, test_openapi_webhooks.py) are the host's text.
    components = {name: value for name, value in schema["components"]["schemas"].items() if not name.endswith("-data")}
    undescribed = [
        "/".join(map(str, path))
        for path, node in walk(components)
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


def test_every_operation_documents_its_errors_and_needs_authentication(db):
    schema = generated_schema()
    operations = [
        (method, url, operation)
        for url, operations in schema["paths"].items()
        if url.startswith(f"{API}/") and not url.startswith(f"{API}/key-sets/")
        for method, operation in operations.items()
    ]
    assert len(operations) == 25  # with GET subscriptions/{id}/signing-keys/, POST .../rotate-signing-key/, .../verify/
    for method, url, operation in operations:
        assert {"400", "401", "403", "404", "429"} <= set(operation["responses"]), (method, url)
        assert {"basicAuth", "cookieAuth"} <= {name for entry in operation["security"] for name in entry}
        assert {} not in operation["security"], (method, url)


def test_the_public_key_set_needs_no_authentication(db):
    schema = generated_schema()
    [(method, operation)] = schema["paths"][f"{API}/key-sets/{{key_set_id}}/"].items()
    assert method == "get" and "security" not in operation and "security" not in schema
    assert set(operation["responses"]) == {"200", "404", "429"}
    assert "Cache-Control" in operation["responses"]["200"]["headers"]


def test_secret_fields_appear_only_where_secrets_are_returned(db):
    schema = generated_schema()
    components = schema["components"]["schemas"]
    assert "secret" not in components["Subscription"]["properties"]
    assert "secret" in components["SubscriptionRequest"]["properties"]
    assert "secret" in components["Secret"]["properties"]


def test_nullable_free_form_fields_accept_null_and_any_value(db):
    """drf-spectacular's OpenAPI 3.1 ``oneOf: [{}, {"type": "null"}]`` would refuse null (it matches both)."""
    properties = generated_schema()["components"]["schemas"]["EventType"]["properties"]
    for name in ("schema", "example"):
        field = Draft202012Validator(properties[name])
        assert all(field.is_valid(value) for value in (None, {"type": "object"}, [1], "text")), name


def test_the_schema_and_its_documentation_pages_are_served(db):
    assert_schema_pages_are_served()


# -- schemathesis ------------------------------------------------------------------------------------


def cursor(querystring: str) -> str:
    return base64.b64encode(querystring.encode()).decode()


#: Text no database stores: lone surrogates (sent as JSON escapes, low before high so that they
#: do not pair) and a NUL character, all in one string so that one draw finds either problem.
POISON = "a\udfff\ud800\x00b"
#: Numbers out of every range and constants strict JSON refuses, as JSON text.
HOSTILE_NUMBERS = ["1e400", "-1e400", "1" + "0" * 400, "NaN", "-Infinity"]
#: Whole bodies nested deep enough to exhaust Python's recursion limit.
HOSTILE_BODIES = [b"[" * 100_000, b'{"a":' * 10_000 + b"1" + b"}" * 10_000]
#: Query values: crafted cursors, NUL, a huge number (no surrogates: a URL cannot carry them).
HOSTILE_QUERY_VALUES = [
    cursor("p=notadate"),
    cursor("p=2024-13-45 00:00:00+00:00"),
    cursor("p=0001-01-01 00:00:00+14:00"),
    cursor("p=9999-12-31 23:59:59-14:00"),
    cursor("o=5&r=1&p=\x00"),
    "\x00",
    "a\x00b",
    "9" * 400,
]
#: What a subscription needs to be created: a URL the SSRF guard allows in tests, known event
#: types (and no generated headers or secret, which are almost never valid).
SUBSCRIPTION_ESSENTIALS = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.*"]}
MARKER = "__hostile__"
with patched_settings(API_ONLY):
    SCHEMA = generated_schema()


def request_properties(operation) -> dict[str, dict]:
    """The properties of ``operation``'s JSON body, by name."""
    definition = SCHEMA["paths"][operation.path][operation.method.lower()]
    content = definition.get("requestBody", {}).get("content", {}).get("application/json")
    if not content:
        return {}
    return SCHEMA["components"]["schemas"][content["schema"]["$ref"].rsplit("/", 1)[-1]].get("properties", {})


def query_parameters(operation) -> list[str]:
    definition = SCHEMA["paths"][operation.path][operation.method.lower()]
    return [parameter["name"] for parameter in definition.get("parameters", []) if parameter["in"] == "query"]


def hostile_fragment(property_schema: dict) -> st.SearchStrategy[str]:
    """JSON text that once gave 5xx, for a property described by ``property_schema``: the poison
    text inside a free-form object or list (keys and values) or as the value, out-of-range
    numbers, deep nesting."""
    anywhere = st.one_of(
        st.sampled_from([json.dumps(POISON), *HOSTILE_NUMBERS]),
        st.integers(MAX_JSON_DEPTH, 200).map(lambda depth: "[" * depth + "]" * depth),
    )
    if property_schema.get("type") == "object":
        return st.one_of(st.just(json.dumps({POISON: 1, "a": {"b": [POISON]}})), anywhere)
    if property_schema.get("type") == "array":
        return st.one_of(st.just(json.dumps([POISON])), anywhere)
    return anywhere


def hostile_body(body: dict, properties: dict[str, dict]) -> st.SearchStrategy[bytes]:
    """A hostile body, or one property set to a :func:`hostile_fragment`, with the generated
    body's other properties or alone (which a partial update or an action with defaults
    accepts), as the JSON text sent: a JSON encoder would not write NaN, 1e400 or surrogates."""

    def render(name: str, fragment: str, alone: bool) -> bytes:
        text = json.dumps({**({} if alone else body), name: MARKER})
        return text.replace(json.dumps(MARKER), fragment).encode()

    names = sorted(properties) or sorted(body) or ["unknown"]
    one = st.sampled_from(names).flatmap(
        lambda name: st.tuples(st.just(name), hostile_fragment(properties.get(name, {})), st.booleans())
    )
    whole = st.sampled_from(HOSTILE_BODIES)
    return st.integers(0, 9).flatmap(lambda n: whole if n == 0 else one.map(lambda choice: render(*choice)))


def load_schema():
    schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", get_wsgi_application())
    schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=MAX_EXAMPLES)

    @schema.hook
    def flatmap_body(context, body):
        """Half of the bodies are replaced by a :func:`hostile_body`. A third of a subscription's
        bodies get a URL and event types that pass instead, and so do its hostile ones, so that
        scenarios create subscriptions (storing what the hostile values would leave in the
        database) and go on with them."""
        properties = request_properties(context.operation)
        base = body if isinstance(body, dict) else {}
        if "url" in properties:
            base = {key: value for key, value in base.items() if key not in ("headers", "secret")}
            base.update(SUBSCRIPTION_ESSENTIALS)
            return st.one_of(st.just(body), st.just(base), hostile_body(base, properties))
        return st.one_of(st.just(body), hostile_body(base, properties))

    @schema.hook
    def flatmap_query(context, query):
        """Half of the query strings get one parameter set to a hostile value."""
        names = sorted({*(query or {}), *query_parameters(context.operation)})
        if not names:
            return st.just(query)
        hostile = st.tuples(st.sampled_from(names), st.sampled_from(HOSTILE_QUERY_VALUES))
        return st.one_of(st.just(query), hostile.map(lambda item: {**(query or {}), item[0]: item[1]}))

    return schema


with patched_settings(API_ONLY):
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
    """Send three in four generated integer ids (and half of the names) to the customer's own
    objects, so detail endpoints and actions run their real code paths and not only the 404."""
    parameters = case.path_parameters or {}
    if "id" in parameters and isinstance(parameters["id"], int) and parameters["id"] % 4 != 1:
        resource = case.operation.path.removeprefix(f"{API}/").split("/")[0]
        parameters["id"] = ids[resource]
    if "name" in parameters and isinstance(parameters["name"], str) and len(parameters["name"]) % 2 == 0:
        parameters["name"] = "order.created"


def without_host_header(case) -> None:
    # Negative mode invents extra headers; a made-up Host is refused by Django's ALLOWED_HOSTS
    # (an HTML 400) before any API code runs, so it says nothing about the API.
    for name in [name for name in case.headers or {} if name.lower() == "host"]:
        del case.headers[name]


@pytest.mark.schemathesis
@schema.parametrize()
@hypothesis_settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_schemathesis_finds_no_server_errors_and_no_schema_violations(case, customer):
    aim_at_real_objects(case, customer)
    without_host_header(case)
    case.call_and_validate(headers=CUSTOMER_AUTHORIZATION, checks=CHECKS)


class CustomerWorkflow(schema.as_state_machine()):
    """Scenarios of calls chained by the links schemathesis infers, as the customer.

    Each scenario starts from the customer's objects alone: what one scenario creates is rolled
    back, so that Hypothesis, replaying a scenario, gets the answers it got the first time.
    """

    def setup(self) -> None:
        # Django 6.1 renamed savepoint() to savepoint_create().
        self.savepoint = getattr(transaction, "savepoint_create", transaction.savepoint)()

    def teardown(self) -> None:
        transaction.savepoint_rollback(self.savepoint)

    def before_call(self, case) -> None:
        without_host_header(case)

    def get_call_kwargs(self, case) -> dict:
        return {"headers": CUSTOMER_AUTHORIZATION}

    def validate_response(self, response, case, additional_checks=None, **kwargs) -> None:
        case.validate_response(response, checks=STATEFUL_CHECKS, transport_kwargs=kwargs, recorder=self.recorder)


@pytest.mark.schemathesis
def test_schemathesis_scenarios_find_no_server_errors(customer):
    CustomerWorkflow.run(
        settings=hypothesis_settings(
            max_examples=MAX_EXAMPLES,
            stateful_step_count=STATEFUL_STEPS,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
        )
    )

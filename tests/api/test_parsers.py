"""Request bodies (django_webhooks/api/parsers.py): nesting past the limit is a 400, a body over
DATA_UPLOAD_MAX_MEMORY_SIZE a 413, both in JSON; NaN and Infinity are refused."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from django_webhooks.api.parsers import MAX_BODY_DEPTH, WebhooksJSONParser
from django_webhooks.api.views import SubscriptionViewSet
from django_webhooks.capture.payloads import MAX_JSON_DEPTH
from django_webhooks.models import Subscription
from tests.api import API

pytestmark = pytest.mark.django_db

VALID = {"url": "http://127.0.0.1:9/hook", "event_types": ["order.created"]}


@pytest.fixture
def subscription(alice, make_subscription, receiver):
    return make_subscription(receiver.url("/hook"), owner_id=str(alice.pk))


def nested_lists(levels: int) -> list:
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


def post(client, url, text: str | bytes):
    return client.generic("POST", url, text, content_type="application/json")


def test_the_api_parses_with_its_own_parser():
    assert SubscriptionViewSet.parser_classes == [WebhooksJSONParser]
    assert MAX_BODY_DEPTH == MAX_JSON_DEPTH + 1


@pytest.mark.parametrize(
    "body",
    ["[" * 100_000, "[" * 100_000 + "]" * 100_000, '{"a":' * 10_000 + "1" + "}" * 10_000, "[" * 10_000 + "]" * 10_000],
    ids=["100k open arrays", "100k arrays", "10k objects", "10k arrays"],
)
def test_a_body_nested_past_what_python_recurses_is_a_400_not_a_500(client, subscription, body):
    for url in (f"{API}/subscriptions/", f"{API}/subscriptions/{subscription.pk}/test/"):
        response = post(client, url, body)
        assert response.status_code == 400
        assert response.json() == {
            "detail": f"JSON parse error - objects and arrays nest at most {MAX_BODY_DEPTH} levels deep."
        }


def test_json_values_nest_up_to_max_json_depth_and_not_one_level_more(client):
    deepest = {**VALID, "filters": {"a": nested_lists(MAX_JSON_DEPTH - 1)}}
    response = post(client, f"{API}/subscriptions/", json.dumps(deepest))
    assert response.status_code == 201, response.content
    assert Subscription.objects.get(pk=response.json()["id"]).filters == deepest["filters"]

    too_deep = {**VALID, "filters": {"a": nested_lists(MAX_JSON_DEPTH)}}
    response = post(client, f"{API}/subscriptions/", json.dumps(too_deep))
    assert response.status_code == 400
    assert "nest at most" in response.json()["detail"]
    assert Subscription.objects.count() == 1


def test_a_body_over_the_upload_limit_is_a_413_in_json(client, subscription):
    with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000):
        big = json.dumps({**VALID, "description": "x" * 2000})
        for method, url in (("POST", f"{API}/subscriptions/"), ("PATCH", f"{API}/subscriptions/{subscription.pk}/")):
            response = client.generic(method, url, big, content_type="application/json")
            assert response.status_code == 413
            assert response["Content-Type"] == "application/json"
            assert response.json() == {"detail": "The request body is larger than 1000 bytes."}
        small = json.dumps({**VALID, "description": "x" * 100})
        assert post(client, f"{API}/subscriptions/", small).status_code == 201


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_refused(client, literal):
    response = post(client, f"{API}/subscriptions/", json.dumps(VALID)[:-1] + f', "filters": {{"a": {literal}}}}}')
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_a_number_no_float_holds_is_refused_in_the_field(client, number):
    response = post(client, f"{API}/subscriptions/", json.dumps(VALID)[:-1] + f', "filters": {{"a": {number}}}}}')
    assert response.status_code == 400
    assert "filters" in response.json()
    assert Subscription.objects.count() == 0


def test_the_schema_documents_413_on_operations_that_take_a_body():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for url, operations in paths.items():
        for method, operation in operations.items():
            if url.startswith(f"{API}/"):
                assert ("413" in operation["responses"]) == (method in ("post", "put", "patch")), (method, url)

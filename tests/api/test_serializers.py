"""Every bad input is a 400 naming the field, never a 500 (django_webhooks/api/serializers.py)."""

from __future__ import annotations

import json
import socket
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from django_webhooks.models import DeliveryAttempt, EventType, Subscription
from tests.api import API
from tests.ssrf_cases import FORBIDDEN_ADDRESSES, ODD_SPELLINGS, literal_url

pytestmark = pytest.mark.django_db

VALID_URL = "http://127.0.0.1:9/hook"


def webhooks(**overrides):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **overrides})


def private_resolver(host, port, *args, **kwargs):
    """A getaddrinfo stand-in for DNS: every name points into a private network."""
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", port))]


@pytest.fixture
def subscription(alice, make_subscription):
    return make_subscription(VALID_URL, owner_id=str(alice.pk))


def post_json(client, url, body):
    """POST ``body`` as JSON with escapes, as a client would send lone surrogates."""
    return client.post(url, json.dumps(body), content_type="application/json")


def create(client, **fields):
    body = {"url": VALID_URL, "event_types": ["order.created"], **fields}
    before = Subscription.objects.count()
    response = post_json(client, f"{API}/subscriptions/", body)
    if response.status_code == 400:
        assert Subscription.objects.count() == before
    return response


def assert_refused(response, field, fragment=""):
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert fragment.lower() in str(errors[field]).lower()


def test_a_valid_subscription_is_accepted(client):
    assert create(client).status_code == 201


@pytest.mark.parametrize(
    "url", ["not a url", "http://", "http://exa mple.com/", "//example.com/hook", "http://a@b.com/"]
)
def test_malformed_urls(client, url):
    assert_refused(create(client, url=url), "url")


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "javascript:alert(1)", "file:///etc/passwd"])
def test_only_http_and_https(client, url):
    assert_refused(create(client, url=url), "url", "http")


@pytest.mark.parametrize(
    "url,reason",
    [
        ("http://127.0.0.1:8000/hook", "loopback"),
        ("http://[::1]/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://0x7f.1/hook", "loopback"),
        ("http://10.0.0.8/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
    ],
)
def test_the_ssrf_guard_refuses_internal_targets(client, url, reason):
    with webhooks(ALLOW_LOOPBACK=False):
        assert_refused(create(client, url=url), "url", reason)


@pytest.mark.parametrize("url", [literal_url(address) for address, _ in FORBIDDEN_ADDRESSES] + ODD_SPELLINGS)
def test_every_forbidden_address_form_is_refused_at_creation(client, url):
    with webhooks(ALLOW_LOOPBACK=False):
        assert_refused(create(client, url=url), "url")


def test_a_host_name_resolving_to_a_private_address_is_refused(client):
    with webhooks(ALLOW_LOOPBACK=False, RESOLVER="tests.api.test_serializers.private_resolver"):
        assert_refused(create(client, url="https://hooks.example.com/in"), "url", "private")


def test_an_unresolvable_host_is_accepted_and_vetted_again_before_each_request(client):
    response = create(client, url="https://no-such-host.invalid/hook")
    assert response.status_code == 201, response.json()


def test_https_policy_applies(client):
    with webhooks(REQUIRE_HTTPS=True):
        assert_refused(create(client, url=VALID_URL), "url", "https")


def test_url_too_long(client):
    assert_refused(create(client, url="https://example.com/" + "a" * 2000), "url")


def test_unknown_and_archived_event_types(client):
    EventType.objects.create(name="order.refunded", archived=True)
    assert_refused(create(client, event_types=["order.shipped"]), "event_types", "unknown")
    assert_refused(create(client, event_types=["order.refunded"]), "event_types", "archived")


def test_an_archived_event_type_a_subscription_has_may_stay(client, subscription):
    EventType.objects.create(name="order.refunded", archived=True)
    Subscription.objects.filter(pk=subscription.pk).update(event_types=["order.refunded"])
    url = f"{API}/subscriptions/{subscription.pk}/"
    body = {"url": VALID_URL, "event_types": ["order.refunded", "order.created"]}
    assert client.put(url, body, format="json").status_code == 200
    assert_refused(create(client, event_types=["order.refunded"]), "event_types", "archived")


@pytest.mark.parametrize("pattern", ["order*", "order.**", "*.*x", "order.", ".order", "order created"])
def test_bad_event_type_names_and_wildcards(client, pattern):
    assert_refused(create(client, event_types=[pattern]), "event_types", "valid")


def test_a_pattern_must_match_some_event_type(client):
    assert_refused(create(client, event_types=["invoice.*"]), "event_types", "matches no")
    assert create(client, event_types=["order.*"]).status_code == 201
    assert create(client, event_types=["*"]).status_code == 201


def test_event_types_must_be_a_non_empty_list_without_repeats(client):
    assert_refused(create(client, event_types=[]), "event_types")
    assert_refused(create(client, event_types="order.created"), "event_types")
    assert_refused(create(client, event_types=["order.created", "order.created"]), "event_types", "once")


def test_too_many_custom_headers(client):
    with webhooks(MAX_CUSTOM_HEADERS=2):
        assert_refused(create(client, headers={"X-A": "1", "X-B": "2", "X-C": "3"}), "headers", "at most 2")
        assert create(client, headers={"X-A": "1", "X-B": "2"}).status_code == 201


def test_too_long_custom_headers(client):
    assert_refused(create(client, headers={"X-Long": "v" * 1001}), "headers")
    assert_refused(create(client, headers={"X-" + "n" * 120: "v"}), "headers", "at most")


@pytest.mark.parametrize(
    "name",
    [
        "Webhook-Signature",
        "webhook-id",
        "Webhook-Timestamp",
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "Connection",
        "content-type",
        "Upgrade",
    ],
)
def test_forbidden_header_names(client, name):
    assert_refused(create(client, headers={name: "x"}), "headers", "cannot be overridden")


@pytest.mark.parametrize(
    "headers",
    [{"Bad Name": "x"}, {"X-Ok": "a\r\nHost: evil"}, {"X-A": "1", "x-a": "2"}, ["X-A"], {"X-A": {"nested": True}}],
)
def test_malformed_headers(client, headers):
    assert_refused(create(client, headers=headers), "headers")


def test_invalid_json_body(client):
    response = client.post(f"{API}/subscriptions/", data='{"url": "http://', content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.parametrize(
    "field,value",
    [
        ("url", 123),
        ("ordered", "maybe"),
        ("max_in_flight", "x"),
        ("max_in_flight", 0),
        ("rate_limit", -1),
        ("filters", ["status"]),
        ("description", {"a": 1}),
    ],
)
def test_wrong_types(client, field, value):
    assert_refused(create(client, **{field: value}), field)


def test_a_json_body_that_is_not_an_object(client):
    response = client.post(f"{API}/subscriptions/", data="[1, 2]", content_type="application/json")
    assert response.status_code == 400


@pytest.mark.parametrize(
    "secret", ["abc", "whsec_not*base64!", "whsec_c2hvcnQ=", "sk_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
)
def test_a_supplied_secret_must_be_a_valid_whsec(client, subscription, secret):
    assert_refused(create(client, secret=secret), "secret", "secret")
    response = client.post(f"{API}/subscriptions/{subscription.pk}/rotate-secret/", {"secret": secret}, format="json")
    assert_refused(response, "secret", "secret")


def test_the_secret_cannot_be_changed_by_update(client, subscription):
    response = client.patch(
        f"{API}/subscriptions/{subscription.pk}/", {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}, format="json"
    )
    assert_refused(response, "secret", "rotate-secret")


@pytest.mark.parametrize("overlap", [-1, "soon", 10**9])
def test_rotation_overlap_must_be_a_sensible_number_of_seconds(client, subscription, overlap):
    response = client.post(
        f"{API}/subscriptions/{subscription.pk}/rotate-secret/", {"overlap_seconds": overlap}, format="json"
    )
    assert_refused(response, "overlap_seconds")


def test_recover_since_must_be_a_past_time(client, subscription):
    url = f"{API}/subscriptions/{subscription.pk}/recover/"
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert_refused(client.post(url, {"since": future}, format="json"), "since", "future")
    assert_refused(client.post(url, {"since": "last tuesday"}, format="json"), "since")
    assert_refused(client.post(url, {}, format="json"), "since", "required")


def test_test_event_needs_a_known_active_type_and_object_data(client, subscription):
    url = f"{API}/subscriptions/{subscription.pk}/test/"
    EventType.objects.create(name="order.refunded", archived=True)
    assert_refused(client.post(url, {"event_type": "order.shipped"}, format="json"), "event_type", "unknown")
    assert_refused(client.post(url, {"event_type": "order.refunded"}, format="json"), "event_type", "archived")
    assert_refused(client.post(url, {"event_type": "order..x"}, format="json"), "event_type")
    assert_refused(client.post(url, {"data": [1, 2]}, format="json"), "data")


def test_disable_reason_length(client, subscription):
    response = client.post(f"{API}/subscriptions/{subscription.pk}/disable/", {"reason": "r" * 300}, format="json")
    assert_refused(response, "reason")


def test_form_encoded_bodies_are_refused_not_misread(client):
    response = client.post(f"{API}/subscriptions/", {"url": VALID_URL}, format="multipart")
    assert response.status_code == 415


# -- text and JSON the databases cannot store ------------------------------------------------------

SURROGATE = "\ud800"
NUL = "\x00"


@pytest.mark.parametrize("text,problem", [(SURROGATE, "surrogate"), ("a\udfffb", "surrogate"), (NUL, "NUL")])
@pytest.mark.parametrize(
    "filters,path",
    [
        (lambda text: {"status": text}, "$.status"),
        (lambda text: {"status": ["paid", text]}, "$.status[1]"),
        (lambda text: {"customer": {"tags": {"x": text}}}, "$.customer.tags.x"),
        (lambda text: {text: "paid"}, "a key"),
    ],
)
def test_filters_that_no_database_stores_are_refused_with_their_path(client, text, problem, filters, path):
    assert_refused(create(client, filters=filters(text)), "filters", problem)
    assert path in create(client, filters=filters(text)).json()["filters"][0]
    assert client.get(f"{API}/subscriptions/").status_code == 200


@pytest.mark.parametrize("text,problem", [(SURROGATE, "surrogate"), (NUL, "NUL")])
@pytest.mark.parametrize(
    "data", [lambda text: {"a": text}, lambda text: {"a": [1, {"b": text}]}, lambda text: {text: 1}]
)
def test_test_event_data_that_no_database_stores_is_refused(client, subscription, text, problem, data):
    response = post_json(client, f"{API}/subscriptions/{subscription.pk}/test/", {"data": data(text)})
    assert_refused(response, "data", problem)
    assert not DeliveryAttempt.objects.exists()
    assert client.get(f"{API}/events/").status_code == 200


@pytest.mark.parametrize("text,message", [(SURROGATE, "Surrogate characters"), ("a\x00b", "Null characters")])
def test_every_string_field_of_every_serializer_refuses_what_databases_cannot_store(text, message):
    checked = []
    for serializer_class in api_serializer_classes():
        for name, field in serializer_class().fields.items():
            value = string_input(field, text)
            if field.read_only or value is None:
                continue
            serializer = serializer_class(data={name: value})
            assert not serializer.is_valid()
            assert message in str(serializer.errors.get(name)), (serializer_class.__name__, name, serializer.errors)
            checked.append(f"{serializer_class.__name__}.{name}")
    assert {
        "SubscriptionSerializer.url",
        "SubscriptionSerializer.event_types",
        "SubscriptionSerializer.headers",
    } <= set(checked)
    assert {"DisableSerializer.reason", "RotateSecretSerializer.secret", "DeliveryFilter.event_type"} <= set(checked)


def test_every_json_field_of_every_serializer_has_the_json_rule():
    from django_webhooks.api.serializers import holds_json, refuse_unstorable_json

    with_json = {
        f"{serializer_class.__name__}.{name}"
        for serializer_class in api_serializer_classes()
        for name, field in serializer_class().fields.items()
        if holds_json(field) and refuse_unstorable_json in field.validators
    }
    without = {
        f"{serializer_class.__name__}.{name}"
        for serializer_class in api_serializer_classes()
        for name, field in serializer_class().fields.items()
        if holds_json(field) and refuse_unstorable_json not in field.validators
    }
    assert without == set()
    assert {
        "SubscriptionSerializer.filters",
        "TestEventSerializer.data",
        "EventTypeSerializer.schema",
        "EventTypeSerializer.example",
        "EventSerializer.data",
        "DeliveryAttemptSerializer.request_headers",
    } <= with_json


def api_serializer_classes() -> list[type]:
    """Every serializer class the API defines, in its serializers and filters modules."""
    from rest_framework.serializers import BaseSerializer

    from django_webhooks.api import filters, serializers
    from django_webhooks.api.serializers import StorableJSONMixin

    classes = [
        value
        for module in (serializers, filters)
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, BaseSerializer) and value.__module__ == module.__name__
    ]
    assert all(issubclass(serializer_class, StorableJSONMixin) for serializer_class in classes)
    return [
        serializer_class
        for serializer_class in classes
        if serializer_class.__name__ not in ("WebhooksSerializer", "WebhooksModelSerializer")
    ]


def string_input(field, text: str):
    """An input putting ``text`` where ``field`` takes a string, or None when it takes none."""
    from rest_framework import serializers

    if isinstance(field, serializers.CharField):
        return text
    if isinstance(field, serializers.ListField) and isinstance(field.child, serializers.CharField):
        return [text]
    if isinstance(field, serializers.DictField) and isinstance(field.child, serializers.CharField):
        return {"X-Custom": text}
    return None

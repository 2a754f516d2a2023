"""Hostile inputs to every operation of the API: nothing a client sends gives a 5xx (django_webhooks/api/).

Every operation of the OpenAPI document gets bodies nested 10,000 deep, lone surrogates and NUL
characters in every property (and in the keys and values of the free-form JSON ones), numbers
no float or database column holds, NaN and Infinity literals, every property with every wrong
type, broken encodings and content types, crafted cursors, huge page sizes and path ids that
are not integers. Every answer must be below 500, and JSON (unless the client asked for HTML).
Afterwards the owner's lists must still load: a stored bad value would break them for good.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

import pytest
from django.conf import settings
from django.test import override_settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import patched_settings
from rest_framework.test import APIClient

from django_webhooks.capture.payloads import MAX_JSON_DEPTH
from django_webhooks.models import DeliveryAttempt, DeliveryStatus, Event
from tests.api import API, API_ONLY

pytestmark = pytest.mark.django_db

with patched_settings(API_ONLY):
    SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
OPERATIONS = [
    (method.upper(), path, operation)
    for path, operations in SCHEMA["paths"].items()
    if path.startswith(f"{API}/")
    for method, operation in operations.items()
]
MARKER = "__HOSTILE__"

#: Strings no database should store: lone surrogates (JSON escapes), NUL, odd but valid text.
HOSTILE_TEXT = ["\ud800", "a\udfffb", "\udc00\ud800", "\x00", "a\x00b", "\ufeff", "\u202e", "x" * 100_000]
#: JSON literals, inserted as they are: numbers out of every range, non-standard constants, deep nesting.
HOSTILE_LITERALS = [
    "1e400",
    "-1e400",
    "1" + "0" * 400,
    "-" + "9" * 400,
    "1" + "0" * 5000,
    "NaN",
    "Infinity",
    "-Infinity",
    "[" * 10_000 + "]" * 10_000,
    '{"a":' * 10_000 + "1" + "}" * 10_000,
    "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
]
WRONG_TYPES = [None, True, False, 0, -1, 2**63, 1.5, "", "x", [], {}, ["x"], [None], {"a": None}, [[[]]]]
#: Whole bodies that are not one JSON object.
HOSTILE_BODIES = [
    b"",
    b"null",
    b"[]",
    b"1",
    b'"x"',
    b"{",
    b'{"a": }',
    b"[" * 100_000,
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000,
    b"\xff\xfe\x00",
    b"\xef\xbb\xbf{}",
    b'{"\\ud800": 1}',
    b'{"a": 1, "a": 2}',
]
#: Content types the API does not parse, or charsets it must not decode with.
HOSTILE_CONTENT_TYPES = [
    "application/json; charset=utf-16",
    "application/json; charset=bz2_codec",
    "application/json; charset=no-such-charset",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "multipart/form-data",
    "",
]


def cursor(querystring: str) -> str:
    return quote(base64.b64encode(querystring.encode("utf-8", "surrogatepass")).decode())


#: Query values, already percent-encoded as a client would send them.
HOSTILE_QUERY_VALUES = [
    "",
    "%00",
    "a%00b",
    "%ED%A0%80",
    "%FF",
    "%C0%80",
    "9" * 400,
    "1" + "0" * 5000,
    "-1",
    "0",
    "1e400",
    "NaN",
    "true",
    quote("2020-01-01T00:00:00+14:00"),
    quote("0001-01-01T00:00:00+14:00"),
    quote("9999-12-31T23:59:59-14:00"),
    "x" * 10_000,
]
CRAFTED_CURSORS = [
    "garbage",
    "%00",
    cursor("p=notadate"),
    cursor("p=2024-13-45 00:00:00+00:00"),
    cursor("p=0001-01-01 00:00:00+14:00"),
    cursor("p=9999-12-31 23:59:59-14:00"),
    cursor("p=2024-01-01"),
    cursor("p=\x00"),
    cursor("p=\ud800"),
    cursor("o=99999999&p=2024-01-01 00:00:00+00:00"),
    cursor("o=-1"),
    cursor("r=abc"),
    cursor("r=1&p="),
    cursor("p=" + "9" * 5000),
]
#: Query parameters every operation gets, besides the ones its schema lists.
EXTRA_QUERY_PARAMETERS = ["cursor", "page_size", "all_owners", "format", "unknown"]
PATH_VALUES = ["abc", "-1", "0", "1.5", "1e3", "9" * 30, "9" * 400, "%00", "%ED%A0%80", "%FF", "%20", "x" * 5000]


def resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMA["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def body_properties(operation: dict) -> dict[str, dict]:
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    return resolve(content["schema"]).get("properties", {}) if content else {}


def valid_body(path: str, receiver_url: str) -> dict:
    """A body the operation accepts, so that a hostile value in one property reaches the code behind it."""
    if path.endswith("/subscriptions/") or path.endswith("/subscriptions/{id}/"):
        return {"url": receiver_url, "event_types": ["order.created"]}
    if path.endswith("/recover/"):
        return {"since": "2020-01-01T00:00:00Z"}
    if path.endswith("/test/"):
        return {"event_type": "order.created", "data": {"number": "A-1"}}
    if path.endswith("/rotate-secret/"):
        return {"overlap_seconds": 60}
    if path.endswith("/disable/"):
        return {"reason": "maintenance"}
    return {}


def with_literal(body: dict, name: str, literal: str) -> bytes:
    """``body`` with ``name`` set to the raw JSON text ``literal``."""
    return json.dumps({**body, name: MARKER}).replace(json.dumps(MARKER), literal).encode()


def hostile_bodies(path: str, operation: dict, receiver_url: str):
    """(label, body bytes) for every hostile body of the operation."""
    base = valid_body(path, receiver_url)
    names = sorted({*body_properties(operation), *base, "unknown"})
    for raw in HOSTILE_BODIES:
        yield f"body {raw[:20]!r}", raw
    for name in names:
        values = [*HOSTILE_TEXT, *WRONG_TYPES]
        values += [{text: 1} for text in HOSTILE_TEXT] + [{"a": text} for text in HOSTILE_TEXT]
        values += [[text] for text in HOSTILE_TEXT] + [{"a": {"b": [text]}} for text in HOSTILE_TEXT]
        for value in values:
            yield f"{name}={json.dumps(value)[:40]}", json.dumps({**base, name: value}).encode()
        for literal in HOSTILE_LITERALS:
            yield f"{name}={literal[:20]}", with_literal(base, name, literal)
            yield f"{name}={{a: {literal[:20]}}}", with_literal(base, name, '{"a": ' + literal + "}")


def hostile_queries(operation: dict):
    names = [parameter["name"] for parameter in operation.get("parameters", []) if parameter["in"] == "query"]
    for name in dict.fromkeys([*names, *EXTRA_QUERY_PARAMETERS]):
        values = [*HOSTILE_QUERY_VALUES, *(CRAFTED_CURSORS if name == "cursor" else ())]
        if name == "format":
            values += ["json", "api", "openapi", "xml"]
        for value in values:
            yield f"{name}={value[:30]}", f"{name}={value}"
    yield "repeated", "status=failed&status=%00&cursor=x&cursor=" + CRAFTED_CURSORS[2]
    yield "no name", "=x&&=&%00=%00"


@pytest.fixture(autouse=True)
def no_throttles():
    """Thousands of requests a test: a 429 would hide what the code behind the throttle does."""
    with override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "API_THROTTLE_RATES": {}}):
        yield


@pytest.fixture
def targets(alice, make_subscription, make_delivery, receiver):
    """Ids of alice's own objects (every detail operation runs its real code), and the receiver's URL."""
    subscription = make_subscription(receiver.url("/hook"), owner_id=str(alice.pk), event_types=["order.*"])
    delivery = make_delivery(subscription, status=DeliveryStatus.FAILED)
    Event.objects.filter(pk=delivery.event_id).update(owner_id=str(alice.pk))
    DeliveryAttempt.objects.create(
        delivery=delivery, subscription=subscription, attempt_number=1, url=subscription.url, response_status=500
    )
    return {
        "subscriptions": subscription.pk,
        "events": delivery.event_id,
        "deliveries": delivery.pk,
        "event-types": "order.created",
        "key-sets": subscription.key_set_id,
        "url": receiver.url("/hook"),
    }


class Sender:
    """Sends requests with ``client`` and remembers every answer that is a 5xx, or an error that is not JSON."""

    def __init__(self, client):
        self.client = client
        self.client.raise_request_exception = False
        self.failures: list[str] = []

    def send(self, label, method, url, body=b"", content_type="application/json", expect_json=True, **headers):
        response = self.client.generic(method, url, body, content_type=content_type, **headers)
        json_answer = response.get("Content-Type", "").startswith("application/json")
        if response.status_code >= 500 or (expect_json and response.status_code >= 400 and not json_answer):
            self.failures.append(f"{method} {url[:120]} [{label}] -> {response.status_code} {response.content[:200]!r}")
        return response


def url_for(path: str, targets: dict, segment: str | None = None) -> str:
    """``path`` with its ``{id}``, ``{name}`` or ``{key_set_id}`` set to ``segment``, or to one of alice's own objects."""
    if segment is None:
        segment = str(targets[path.removeprefix(f"{API}/").split("/")[0]])
    return path.replace("{id}", segment).replace("{name}", segment).replace("{key_set_id}", segment)


@pytest.mark.parametrize(
    "method,path,operation", OPERATIONS, ids=[f"{method} {path.removeprefix(API)}" for method, path, _ in OPERATIONS]
)
def test_no_hostile_input_gives_a_server_error(client, targets, method, path, operation):
    sender = Sender(client)
    url = url_for(path, targets)
    for value in PATH_VALUES:
        sender.send(f"path {value[:20]}", method, url_for(path, targets, value))
    for label, query in hostile_queries(operation):
        sender.send(label, method, f"{url}?{query}", expect_json="format=api" not in query)
    for accept in ["text/html", "application/xml", "*/*", "application/json; indent=999999999", "\x00"]:
        sender.send(f"accept {accept}", method, url, expect_json=accept != "text/html", HTTP_ACCEPT=accept)
    if method in ("POST", "PUT", "PATCH"):
        for label, body in hostile_bodies(path, operation, targets["url"]):
            sender.send(label, method, url, body)
        valid = json.dumps(valid_body(path, targets["url"])).encode()
        for content_type in HOSTILE_CONTENT_TYPES:
            sender.send(f"content type {content_type!r}", method, url, valid, content_type=content_type)
            sender.send(f"content type {content_type!r}", method, url, b"a=%00&\xff", content_type=content_type)
        with override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000):
            sender.send("over DATA_UPLOAD_MAX_MEMORY_SIZE", method, url, b'{"a": "' + b"x" * 20_000 + b'"}')
    for resource in ("subscriptions", "events", "deliveries"):
        sender.send("the lists load afterwards", "GET", f"{API}/{resource}/")
    assert sender.failures == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic !!!",
        "Basic " + base64.b64encode(b"alice\x00:alice-pass").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\x00").decode(),
        "Basic " + base64.b64encode("\ud800:x".encode("utf-8", "surrogatepass")).decode(),
        "Basic",
        "Token \x00",
        "Token " + "a" * 10_000,
        "Token \xff",
        "Bearer x",
        "\x00",
    ],
)
def test_hostile_credentials_are_refused_not_crashed(db, authorization):
    sender = Sender(APIClient())
    for method, path, _ in OPERATIONS:
        sender.send(
            authorization, method, path.replace("{id}", "1").replace("{name}", "x"), HTTP_AUTHORIZATION=authorization
        )
    assert sender.failures == []


# -- the receiver authentication, signature and handshake fields ----------------------------------------

AUTH_PROPERTIES = sorted(
    name
    for name, schema in resolve(SCHEMA["components"]["schemas"]["ReceiverAuthRequest"]).get("properties", {}).items()
    if not schema.get("readOnly")
)
#: Methods under which each ``auth`` property is read (the hostile value reaches every branch).
AUTH_CONTEXTS = [
    {},
    {"method": "basic", "username": "u", "password": "p"},
    {"method": "api_key", "header_name": "X-Key", "token": "t"},
    {"method": "oauth2", "token_url": "https://auth.example/t", "client_id": "c", "client_secret": "s"},
    {"method": "oauth2", "token_url": "https://auth.example/t", "client_id": "c", "client_auth": "private_key_jwt"},
]


def test_no_hostile_auth_property_gives_a_server_error(client, targets):
    sender = Sender(client)
    url = f"{API}/subscriptions/{targets['subscriptions']}/"
    base = valid_body(f"{API}/subscriptions/", targets["url"])
    texts = [*HOSTILE_TEXT, "-----BEGIN CERTIFICATE-----\n\x00\n-----END CERTIFICATE-----", "x" * 70_000]
    texts += ["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"]
    for index, context in enumerate(AUTH_CONTEXTS):
        # Every hostile text and wrong type without a method; under each method a NUL, a lone
        # surrogate and a bad PEM (what reaches its own branches); creations with and without oauth2.
        values = [*texts, *WRONG_TYPES] if index == 0 else ["a\x00b", "\ud800", texts[-1]]
        for name in [*AUTH_PROPERTIES, "unknown"]:
            for value in values:
                body = json.dumps({**base, "auth": {**context, name: value}})
                label = f"auth {context.get('method')} {name}={json.dumps(value)[:30]}"
                sender.send(label, "PATCH", url, body)
                if index in (0, 3) and isinstance(value, str):
                    sender.send(f"{label} (create)", "POST", f"{API}/subscriptions/", body)
    for name in ("signature_scheme", "verify_endpoint", "auth"):
        for value in [*HOSTILE_TEXT, *WRONG_TYPES]:
            sender.send(f"{name}={json.dumps(value)[:30]}", "PATCH", url, json.dumps({name: value}))
    sender.send("the list loads afterwards", "GET", f"{API}/subscriptions/")
    assert sender.failures == []


def _pem_key(key, password: bytes | None = None) -> str:
    from cryptography.hazmat.primitives import serialization

    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()


def _bad_field_values():
    """(label, body, the error's path): one bad value of every new field, each refused on its field."""
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

    from tests.pki import CertificateAuthority

    ca = CertificateAuthority()
    client, other = ca.issue("sender", server=False), ca.issue("other", server=False)
    expired = ca.issue("expired", server=False, days=-0.002)  # ended 3 minutes ago
    oauth = {"method": "oauth2", "token_url": "https://auth.example/t", "client_id": "c", "client_secret": "s"}
    jwt = {**oauth, "client_auth": "private_key_jwt", "client_secret": ""}
    tls = {"client_certificate": client.certificate}
    cases = [
        ("unknown method", {"method": "kerberos"}, "method"),
        ("oauth2 without client id", {**oauth, "client_id": ""}, "client_id"),
        ("oauth2 without token url", {**oauth, "token_url": ""}, "token_url"),
        ("oauth2 without secret", {**oauth, "client_secret": ""}, "client_secret"),
        ("token url not a url", {**oauth, "token_url": "not a url"}, "token_url"),
        ("token url ftp", {**oauth, "token_url": "ftp://auth.example/t"}, "token_url"),
        ("token url metadata", {**oauth, "token_url": "http://169.254.169.254/latest"}, "token_url"),
        ("token url userinfo", {**oauth, "token_url": "https://u:p@auth.example/t"}, "token_url"),
        ("token url odd spelling", {**oauth, "token_url": "http://0xa9.0xfe.0xa9.0xfe/t"}, "token_url"),
        ("unknown client auth", {**oauth, "client_auth": "magic"}, "client_auth"),
        ("private_key_jwt without key", jwt, "private_key"),
        ("private_key_jwt bad pem", {**jwt, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}, "private_key"),
        (
            "private_key_jwt short rsa",
            {**jwt, "private_key": _pem_key(rsa.generate_private_key(65537, 1024))},
            "private_key",
        ),
        ("private_key_jwt dsa", {**jwt, "private_key": _pem_key(dsa.generate_private_key(2048))}, "private_key"),
        (
            "private_key_jwt secp256k1",
            {**jwt, "private_key": _pem_key(ec.generate_private_key(ec.SECP256K1()))},
            "private_key",
        ),
        (
            "encrypted key",
            {**tls, "client_key": _pem_key(ec.generate_private_key(ec.SECP256R1()), b"pw")},
            "client_key",
        ),
        ("bad certificate pem", {"client_certificate": "-----BEGIN CERTIFICATE-----\nnope\n"}, "client_certificate"),
        (
            "a key as certificate",
            {"client_certificate": client.private_key, "client_key": client.private_key},
            "client_certificate",
        ),
        ("certificate without key", tls, "client_key"),
        ("key without certificate", {"client_key": client.private_key}, "client_certificate"),
        ("key of another certificate", {**tls, "client_key": other.private_key}, "client_key"),
        (
            "expired certificate",
            {"client_certificate": expired.certificate, "client_key": expired.private_key},
            "client_certificate",
        ),
        ("bad ca bundle", {"ca_bundle": "garbage"}, "ca_bundle"),
        ("basic without user", {"method": "basic", "password": "p"}, "username"),
        ("basic user with colon", {"method": "basic", "username": "a:b", "password": "p"}, "username"),
        ("basic password with crlf", {"method": "basic", "username": "a", "password": "p\r\nX: y"}, "password"),
        ("bearer without token", {"method": "bearer"}, "token"),
        ("api key bad header", {"method": "api_key", "token": "t", "header_name": "X Bad"}, "header_name"),
        ("api key our header", {"method": "api_key", "token": "t", "header_name": "webhook-signature"}, "header_name"),
        ("secret too long", {"method": "bearer", "token": "t" * 5000}, "token"),
    ]
    for label, auth, field in cases:
        yield label, {"auth": auth}, ["auth", field]
    yield "auth not an object", {"auth": "basic"}, ["auth"]
    yield "auth a list", {"auth": [{"method": "basic"}]}, ["auth"]
    for value in ["v2", "", "V1", None, 1, ["v1"]]:
        yield f"signature_scheme {value!r}", {"signature_scheme": value}, ["signature_scheme"]
    for value in ["maybe", 2, [], {}, None]:
        yield f"verify_endpoint {value!r}", {"verify_endpoint": value}, ["verify_endpoint"]


def test_bad_values_of_the_new_fields_are_refused_on_their_field(client, targets):
    """Each bad value is a 400 naming its field (nested under ``auth``), on creation and update; nothing is stored."""
    from django_webhooks.models import ReceiverAuth, Subscription

    url = f"{API}/subscriptions/{targets['subscriptions']}/"
    base = valid_body(f"{API}/subscriptions/", targets["url"])
    count = Subscription.objects.count()
    problems = []
    for label, body, path in _bad_field_values():
        for method, target in (("POST", f"{API}/subscriptions/"), ("PATCH", url)):
            response = client.generic(method, target, json.dumps({**base, **body}), content_type="application/json")
            errors = response.json() if response.status_code == 400 else {}
            for key in path:
                errors = errors.get(key) if isinstance(errors, dict) else None
            if response.status_code != 400 or not errors:
                problems.append(f"{method} {label}: {response.status_code} {response.content[:300]!r}")
    assert problems == []
    assert Subscription.objects.count() == count and not ReceiverAuth.objects.exists()

"""The event catalog's rules: names, patterns, what a pattern selects, entries, thin and archived types, schemas."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator

from django_webhooks import catalog, models
from django_webhooks.catalog import (
    EVENT_TYPE_NAME_RE,
    event_type_spec,
    json_schema_problem,
    known_event_types,
    patterns_matching,
    schema_errors,
    thin_types,
    type_matches,
    validate_active_event_type,
    validate_event_type_name,
    validate_event_type_pattern,
    validate_subscribed_event_types,
)
from django_webhooks.exceptions import UnknownEventType, WebhooksConfigurationError
from django_webhooks.models import EventType

ORDER_SCHEMA = {
    "type": "object",
    "required": ["id", "total"],
    "properties": {"id": {"type": "integer"}, "total": {"type": "string"}},
}


def codes(error: ValidationError) -> list[str]:
    return [item.code for item in error.error_list]


# --- names and patterns ----------------------------------------------------------------------


def test_the_model_validator_is_the_catalog_rule():
    # Migrations name django_webhooks.models.validate_event_type_name.
    assert models.validate_event_type_name is validate_event_type_name


@pytest.mark.parametrize("value", ["a.b\n", "order.created\n", "*\n", "order.*\n"])
def test_a_trailing_newline_is_refused(value):
    assert EVENT_TYPE_NAME_RE.match(value) is None and EVENT_TYPE_NAME_RE.search(value) is None
    assert catalog.EVENT_TYPE_PATTERN_RE.search(value) is None
    with pytest.raises(ValidationError):
        validate_event_type_pattern(value)
    with pytest.raises(ValidationError):
        validate_event_type_name(value)
    # Django's and DRF's RegexField use the compiled expression with search().
    with pytest.raises(ValidationError):
        RegexValidator(EVENT_TYPE_NAME_RE)(value)


def test_names_and_patterns():
    validate_event_type_name("a.b")
    for bad in [None, 3, "a.*", "*"]:
        with pytest.raises(ValidationError) as info:
            validate_event_type_name(bad)
        assert codes(info.value) == ["invalid_event_type"]
    for good in ["*", "a.*", "a.*.c", "a.b"]:
        validate_event_type_pattern(good)
    for bad in [None, "*.b", "a.b*", ""]:
        with pytest.raises(ValidationError) as info:
            validate_event_type_pattern(bad)
        assert codes(info.value) == ["invalid_event_type_pattern"]


def test_type_patterns():
    assert type_matches("*", "order.created")
    assert type_matches("order.*", "order.created")
    assert type_matches("order.created", "order.created")
    assert type_matches("*.created", "invoice.created")
    assert not type_matches("order.*", "invoice.created")
    assert not type_matches("order.*", "order.item.added")
    assert not type_matches("order.created", "order.updated")
    assert not type_matches("order", "order.created")


@pytest.mark.parametrize("name", ["order", "order.created", "order.item.added", "a.b.c.d.e", "a.b.c.d.e.f.g.h"])
def test_patterns_matching_are_valid_entries_that_select_the_name(name):
    patterns = patterns_matching(name)
    assert patterns == sorted(set(patterns))
    assert {"*", name} <= set(patterns)
    for pattern in patterns:
        validate_event_type_pattern(pattern)
        assert type_matches(pattern, name), pattern


def test_patterns_matching_lists_every_wildcard_combination():
    assert patterns_matching("order.created") == ["*", "order.*", "order.created"]
    assert patterns_matching("order.item.added") == [
        "*",
        "order.*.*",
        "order.*.added",
        "order.item.*",
        "order.item.added",
    ]
    assert "order.*" not in patterns_matching("order.item.added")  # a * is one segment


# --- JSON Schemas ------------------------------------------------------------------------------


@pytest.mark.parametrize("schema", [{"type": "objekt"}, {"required": "id"}, ["type"], 3, "object"])
def test_json_schema_problem(schema):
    problem = json_schema_problem(schema)
    assert problem and problem.startswith("Not a valid JSON Schema: ")
    with pytest.raises(WebhooksConfigurationError) as info:
        schema_errors(schema, {"id": 1})
    assert str(info.value) == problem


def test_valid_schemas_and_their_errors():
    assert json_schema_problem(ORDER_SCHEMA) is None and json_schema_problem(True) is None
    assert schema_errors(ORDER_SCHEMA, {"id": 1, "total": "1.00"}) == []
    assert schema_errors(ORDER_SCHEMA, {"id": "one"}) == [
        "$: 'total' is a required property",
        "$.id: 'one' is not of type 'integer'",
    ]
    assert schema_errors(None, {"anything": 1}) == []


# --- entries -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_catalog_merges_settings_and_rows():
    EventType.objects.create(name="order.created", thin=True, schema=ORDER_SCHEMA)
    EventType.objects.create(name="invoice.paid", description="Paid.")
    types = known_event_types()
    assert list(types) == sorted(types)
    assert types["order.created"]["thin"] is True
    assert types["order.created"]["schema"] == ORDER_SCHEMA
    assert types["order.created"]["description"] == "An order was placed."
    assert types["order.created"]["example"]["number"] == "A-1001"
    assert types["invoice.paid"]["description"] == "Paid."
    assert event_type_spec("order.updated")["schema"] is None


@pytest.mark.django_db
def test_thin_types_come_from_the_setting_or_the_row(settings):
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {**settings.DJANGO_WEBHOOKS["EVENT_TYPES"], "order.updated": {"thin": True}},
    }
    EventType.objects.create(name="order.created", thin=True)
    EventType.objects.create(name="invoice.paid")
    assert thin_types(["order.created", "order.updated", "order.deleted", "invoice.paid"]) == {
        "order.created",
        "order.updated",
    }
    assert thin_types([]) == set()


@pytest.mark.django_db
def test_archived_and_unknown_types():
    EventType.objects.create(name="order.refunded", archived=True)
    assert validate_active_event_type("order.created")["description"] == "An order was placed."
    for name, code in [("order.refunded", "archived_event_type"), ("order.shipped", "unknown_event_type")]:
        with pytest.raises(ValidationError) as info:
            validate_active_event_type(name)
        assert codes(info.value) == [code]
    with pytest.raises(UnknownEventType, match="archived"):
        event_type_spec("order.refunded")
    with pytest.raises(UnknownEventType, match="EVENT_TYPES"):
        event_type_spec("order.shipped")


@pytest.mark.django_db
def test_subscribed_event_types():
    EventType.objects.create(name="order.refunded", archived=True)
    validate_subscribed_event_types(["order.created", "order.*", "*"])
    validate_subscribed_event_types(["order.refunded"], already=["order.refunded"])
    with pytest.raises(ValidationError) as info:
        validate_subscribed_event_types(["order.refunded", "order.shipped", "invoice.*", "order*", "order.created"])
    assert codes(info.value) == [
        "archived_event_type",
        "unknown_event_type",
        "unmatched_pattern",
        "invalid_event_type_pattern",
    ]


# --- versions ----------------------------------------------------------------------------------


def _v2_to_v1(data):
    return {"id": data["id"], "total": data["amount"]["value"]}


def _v3_to_v2(data):
    return {"id": data["id"], "amount": data["price"]}


THREE_VERSIONS = {
    "version": 3,
    "schema": {"type": "object", "required": ["price"]},
    "example": {"id": 1, "price": {"value": "5.00", "currency": "EUR"}},
    "versions": {
        1: {"schema": ORDER_SCHEMA, "converter": _v2_to_v1},
        2: {"schema": {"type": "object", "required": ["amount"]}, "converter": _v3_to_v2, "description": "amount"},
    },
}


@pytest.fixture
def three_versions(settings):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "EVENT_TYPES": {"order.created": THREE_VERSIONS}}


def test_a_type_without_versions_is_at_version_1(db):
    entry = known_event_types()["order.created"]
    assert entry["version"] == 1
    assert entry["versions"] == [{"version": 1, "description": "", "schema": None, "example": entry["example"]}]
    assert known_event_types()["webhook.endpoint.failing"]["version"] == 1


def test_entries_list_every_version_oldest_first(db, three_versions):
    entry = event_type_spec("order.created")
    assert entry["version"] == 3
    assert [(v["version"], v["description"]) for v in entry["versions"]] == [(1, ""), (2, "amount"), (3, "")]
    assert entry["versions"][-1]["schema"] is entry["schema"]
    assert all("converter" not in version for version in entry["versions"])


def test_convert_runs_the_chain_down_and_leaves_the_input_alone(three_versions):
    data = {"id": 9, "price": {"value": "5.00", "currency": "EUR"}}
    assert catalog.convert("order.created", data, 3, 2) == {"id": 9, "amount": {"value": "5.00", "currency": "EUR"}}
    assert catalog.convert("order.created", data, 3, 1) == {"id": 9, "total": "5.00"}
    assert catalog.convert("order.created", data, 3, 3) is data
    assert catalog.convert("order.created", {"id": 9, "amount": {"value": "1"}}, 2, 1) == {"id": 9, "total": "1"}
    assert data == {"id": 9, "price": {"value": "5.00", "currency": "EUR"}}


def test_convert_refuses_what_it_cannot_render(three_versions, settings):
    with pytest.raises(catalog.EventVersionError, match="recorded in version 2; converters only render older"):
        catalog.convert("order.created", {}, 2, 3)
    with pytest.raises(catalog.EventVersionError, match="converter to order.created version 2 failed: KeyError"):
        catalog.convert("order.created", {"id": 1}, 3, 2)
    with pytest.raises(catalog.EventVersionError, match="No converter renders order.created version 1 as version 0"):
        catalog.convert("order.created", {}, 1, 0)
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {"order.created": {**THREE_VERSIONS, "versions": {2: {"converter": _v3_to_v2}}}},
    }
    with pytest.raises(catalog.EventVersionError, match="No converter renders order.created version 2 as version 1"):
        catalog.convert("order.created", {"id": 1, "price": 1}, 3, 1)
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {"order.created": {**THREE_VERSIONS, "versions": {2: {"converter": "nope.missing"}}}},
    }
    with pytest.raises(catalog.EventVersionError, match="'nope.missing' could not be imported"):
        catalog.convert("order.created", {"id": 1, "price": 1}, 3, 2)


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"version": 0}, "['version'] must be a positive integer"),
        ({"version": True}, "['version'] must be a positive integer"),
        ({"version": 2, "versions": [1]}, "['versions'] must be a dict"),
        ({"version": 2, "versions": {2: {"converter": len}}}, "key 2: an older version is an integer from 1 to 1"),
        ({"version": 2, "versions": {"1": {"converter": len}}}, "key '1': an older version is an integer"),
        ({"version": 2, "versions": {1: "len"}}, "['versions'][1] must be a dict"),
        ({"version": 2, "versions": {1: {}}}, "['versions'][1] has no converter: version 1 cannot be rendered"),
        ({"version": 2, "versions": {1: {"converter": len, "typo": 1}}}, "has unknown key(s): typo"),
        ({"version": 2, "versions": {1: {"converter": len, "schema": 3}}}, "['versions'][1]['schema']: Not a valid"),
        (
            {"version": 4, "versions": {1: {"converter": len}, 3: {"converter": len}}},
            "no converter path from version 4 down to version 1: version(s) 2 are not declared",
        ),
    ],
)
def test_version_problems(declared, problem):
    problems = catalog.version_problems("order.created", declared)
    assert any(problem in message for message in problems), problems
    assert all(message.startswith("DJANGO_WEBHOOKS['EVENT_TYPES']['order.created']") for message in problems)


def test_well_formed_versions_have_no_problem():
    assert catalog.version_problems("order.created", THREE_VERSIONS) == []
    assert catalog.version_problems("order.created", {"version": 3, "versions": {2: {"converter": len}}}) == []
    assert catalog.version_problems("order.created", {}) == []


def test_pins_are_the_current_versions_of_the_types_selected(db, three_versions):
    EventType.objects.create(name="invoice.paid")
    EventType.objects.create(name="order.archived", archived=True)
    assert catalog.pin_event_versions(["order.*"]) == {"order.created": 3}
    assert catalog.pin_event_versions(["*"], {"order.created": 1}) == {"invoice.paid": 1, "order.created": 1}
    assert catalog.pin_event_versions(["*"], previous=["order.created"]) == {"invoice.paid": 1}
    assert catalog.pin_event_versions(["webhook.endpoint.*"]) == {
        "webhook.endpoint.disabled": 1,
        "webhook.endpoint.failing": 1,
        "webhook.endpoint.recovered": 1,
    }


def test_validate_event_versions(db, three_versions):
    catalog.validate_event_versions({"order.created": 1})
    catalog.validate_event_versions({})
    with pytest.raises(ValidationError) as raised:
        catalog.validate_event_versions({"order.created": 4, "nope.nope": 1, "webhook.endpoint.failing": True})
    assert raised.value.messages == [
        "order.created has no version 4; its versions are 1, 2, 3.",
        "Unknown event type: nope.nope is not in the event catalog.",
        "webhook.endpoint.failing has no version True; its versions are 1.",
    ]
    with pytest.raises(ValidationError, match="must be an object"):
        catalog.validate_event_versions(["order.created"])

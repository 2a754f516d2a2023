"""The log search box of the admin and the portal (django_webhooks/log_search.py): message id prefixes, event ids,
payload content, each answered through an index; bad input is a message, never an error page."""

from __future__ import annotations

import pytest
from django.db import connection

from django_webhooks import log_search as search
from django_webhooks.log_search import DELIVERY_PATHS, EVENT_PATHS, apply_log_search, parse_log_search
from django_webhooks.models import Delivery, Event
from tests.admin import add_attempt, changelist_rows, messages_of, url

pytestmark = pytest.mark.django_db

POSTGRESQL = connection.vendor == "postgresql"


@pytest.fixture
def orders(make_subscription, make_delivery):
    """Three orders' deliveries (with an attempt each) whose payloads differ in status, country and tags."""
    subscription = make_subscription("http://127.0.0.1:9/orders")
    made = {}
    for name, data in {
        "paid_nl": {
            "id": 1,
            "status": "paid",
            "customer": {"country": "NL", "name": "Jane Doe"},
            "tags": ["vip", "b2b"],
        },
        "paid_de": {"id": 2, "status": "paid", "customer": {"country": "DE", "name": "Max"}, "tags": []},
        "new_nl": {"id": "3", "status": "new", "customer": {"country": "NL", "name": "Anne"}, "tags": ["vip"]},
    }.items():
        delivery = make_delivery(subscription, data)
        add_attempt(delivery)
        made[name] = delivery
    return made


def delivery_search(client, term: str) -> set[int]:
    response = client.get(url("delivery_changelist"), {"q": term})
    assert response.status_code == 200
    return {d.pk for d in changelist_rows(response)}


def pks(deliveries, *names) -> set[int]:
    return {deliveries[name].pk for name in names}


# --- message ids ------------------------------------------------------------------------------


def test_a_message_id_or_its_start_finds_the_delivery(admin_client, orders):
    message_id = orders["paid_de"].message_id
    assert delivery_search(admin_client, message_id) == pks(orders, "paid_de")
    others = {d.message_id for name, d in orders.items() if name != "paid_de"}
    prefix = next(
        message_id[:n] for n in range(5, len(message_id)) if not any(o.startswith(message_id[:n]) for o in others)
    )
    assert delivery_search(admin_client, prefix) == pks(orders, "paid_de")
    assert delivery_search(admin_client, "msg_") == pks(orders, "paid_de", "paid_nl", "new_nl")


def test_message_id_prefixes_are_case_sensitive(admin_client, orders):
    """SQLite's LIKE ignores case; the range condition keeps the match exact, as on PostgreSQL."""
    delivery = orders["paid_nl"]
    Delivery.objects.filter(pk=delivery.pk).update(message_id="msg_AbCdEf0123456789")
    assert delivery_search(admin_client, "msg_AbCd") == {delivery.pk}
    assert delivery_search(admin_client, "msg_abcd") == set()
    assert delivery_search(admin_client, "AbCd") == set()  # no msg_: still a prefix of the whole id


def test_a_word_without_msg_is_a_message_id_prefix_too(admin_client, orders):
    Delivery.objects.filter(pk=orders["new_nl"].pk).update(message_id="legacy-42")
    assert delivery_search(admin_client, "legacy-") == pks(orders, "new_nl")


def test_attempts_and_events_by_message_id(admin_client, orders, make_subscription):
    delivery = orders["paid_nl"]
    attempts = admin_client.get(url("deliveryattempt_changelist"), {"q": delivery.message_id})
    assert {a.delivery_id for a in changelist_rows(attempts)} == {delivery.pk}
    events = admin_client.get(url("event_changelist"), {"q": delivery.message_id})
    assert [e.pk for e in changelist_rows(events)] == [delivery.event_id]
    # an event with two matching deliveries is listed once
    Delivery.objects.create(event=delivery.event, subscription=make_subscription("http://127.0.0.1:9/second"))
    events = admin_client.get(url("event_changelist"), {"q": "msg_"})
    assert sorted(e.pk for e in changelist_rows(events)) == sorted(d.event_id for d in orders.values())


def test_the_message_id_prefix_is_read_through_an_index(orders):
    queryset = apply_log_search(Delivery.objects.all(), parse_log_search("msg_abc"), DELIVERY_PATHS).queryset
    if POSTGRESQL:
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()
        # The unique index, in varchar_pattern_ops order: LIKE 'msg\_abc%' as a range on it.
        assert "dwh_delivery_message_id_uniq" in plan and "~>=~" in plan, plan
    else:
        plan = queryset.explain()
        assert "USING INDEX dwh_delivery_message_id_uniq" in plan, plan
        assert "message_id>? AND message_id<?" in plan, plan


# --- event ids --------------------------------------------------------------------------------


def test_an_event_id_finds_the_event_its_deliveries_and_their_attempts(admin_client, orders):
    delivery = orders["paid_de"]
    event_id = str(delivery.event_id)
    events = admin_client.get(url("event_changelist"), {"q": event_id})
    assert [e.pk for e in changelist_rows(events)] == [delivery.event_id]
    assert delivery_search(admin_client, event_id) == {delivery.pk}
    attempts = admin_client.get(url("deliveryattempt_changelist"), {"q": event_id})
    assert {a.delivery_id for a in changelist_rows(attempts)} == {delivery.pk}


def test_a_number_is_also_an_idempotency_key_of_events(admin_client, orders):
    keyed = Event.objects.create(event_type="order.created", payload={}, idempotency_key="987654")
    response = admin_client.get(url("event_changelist"), {"q": "987654"})
    assert [e.pk for e in changelist_rows(response)] == [keyed.pk]


# --- payload ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("status=paid", {"paid_nl", "paid_de"}),
        ("customer.country=NL", {"paid_nl", "new_nl"}),
        ("status=paid customer.country=NL", {"paid_nl"}),
        ('customer.name="Jane Doe"', {"paid_nl"}),
        ("id=2", {"paid_de"}),
        ('id="3"', {"new_nl"}),
        ("id=3", set()),  # a number is not the string "3"
        ('{"customer": {"country": "DE"}}', {"paid_de"}),
        ('{"status": "paid", "customer": {"country": "NL"}}', {"paid_nl"}),
        ("status=refunded", set()),
    ],
)
def test_payload_search_on_deliveries(admin_client, orders, term, expected):
    assert delivery_search(admin_client, term) == pks(orders, *expected)


@pytest.mark.skipif(not POSTGRESQL, reason="jsonb containment: PostgreSQL only")
def test_payload_containment_on_postgresql_matches_inside_arrays(admin_client, orders):
    assert delivery_search(admin_client, '{"tags": ["vip"]}') == pks(orders, "paid_nl", "new_nl")


def test_payload_search_on_events_and_attempts(admin_client, orders):
    events = admin_client.get(url("event_changelist"), {"q": "customer.country=NL"})
    assert {e.pk for e in changelist_rows(events)} == {orders["paid_nl"].event_id, orders["new_nl"].event_id}
    attempts = admin_client.get(url("deliveryattempt_changelist"), {"q": "status=new"})
    assert {a.delivery_id for a in changelist_rows(attempts)} == {orders["new_nl"].pk}


def test_payload_search_combines_with_a_message_id(admin_client, orders):
    assert delivery_search(admin_client, f"status=paid {orders['paid_de'].message_id}") == pks(orders, "paid_de")
    assert delivery_search(admin_client, f"status=new {orders['paid_de'].message_id}") == set()


def test_keys_that_look_like_lookups_are_keys(admin_client, make_subscription, make_delivery):
    """``contains``, ``in`` or ``a__b`` name payload keys, never ORM lookups."""
    subscription = make_subscription()
    wanted = make_delivery(subscription, {"contains": "x", "in": 1, "a__b": True})
    make_delivery(subscription, {"contains": "y", "in": 1, "a__b": True})
    assert delivery_search(admin_client, "contains=x in=1 a__b=true") == {wanted.pk}


@pytest.mark.skipif(not POSTGRESQL, reason="the GIN index exists on PostgreSQL only (migration 0005)")
def test_payload_search_uses_the_gin_index_on_postgresql(orders):
    queryset = apply_log_search(Event.objects.all(), parse_log_search("customer.country=NL"), EVENT_PATHS).queryset
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
    plan = queryset.explain()
    assert "dwh_event_payload_gin" in plan, plan


@pytest.mark.skipif(POSTGRESQL, reason="PostgreSQL searches every event through its index")
def test_without_a_json_index_only_the_newest_events_are_searched_and_the_page_says_so(
    admin_client, orders, monkeypatch
):
    monkeypatch.setattr(search, "PAYLOAD_SCAN_LIMIT", 2)
    response = admin_client.get(url("delivery_changelist"), {"q": "customer.country=NL"})
    # paid_nl is the oldest of the three events: outside the window of the newest two
    assert {d.pk for d in changelist_rows(response)} == pks(orders, "new_nl")
    assert any("newest 2 events only" in message for message in messages_of(response))
    monkeypatch.setattr(search, "PAYLOAD_SCAN_LIMIT", 3)
    response = admin_client.get(url("delivery_changelist"), {"q": "customer.country=NL"})
    assert {d.pk for d in changelist_rows(response)} == pks(orders, "paid_nl", "new_nl")
    assert messages_of(response) == []


# --- help and bad input -----------------------------------------------------------------------


@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_the_search_box_explains_its_syntax(admin_client, model):
    html = admin_client.get(url(f"{model}_changelist")).content.decode()
    assert 'id="searchbar"' in html
    assert "customer.country=NL" in html and "msg_" in html


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("{not json", "is not a valid JSON object"),
        ('{"a": ' * 10_000 + "1" + "}" * 10_000, "is not a valid JSON object"),
        ("a..b=1", "has an empty key"),
        ("a=NaN", "is not a JSON number"),
        ('{"a": "\\ud800"}', "lone UTF-16 surrogate"),
        ("a" + ".a" * 1000 + "=1", "nested deeper"),
        ("status=paid status=new", "asks for another value of status"),
    ],
)
@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_a_search_that_cannot_be_read_is_a_message_not_an_error(admin_client, orders, model, term, message):
    response = admin_client.get(url(f"{model}_changelist"), {"q": term})
    assert response.status_code == 200
    assert changelist_rows(response) == []
    assert any(message in m for m in messages_of(response)), messages_of(response)


def test_nul_characters_are_refused():
    """The admin's search form refuses them first ("Null characters are not allowed"); other callers get this."""
    with pytest.raises(search.InvalidSearch, match="NUL character"):
        parse_log_search("msg_\x00")


@pytest.mark.parametrize("term", ["9" * 30, "a=" + "9" * 400, "1e400", "%", "_", "msg_%", "'", '"', "\\"])
@pytest.mark.parametrize("model", ["event", "delivery", "deliveryattempt"])
def test_odd_terms_match_nothing_without_an_error(admin_client, orders, model, term):
    response = admin_client.get(url(f"{model}_changelist"), {"q": term})
    assert response.status_code == 200
    assert changelist_rows(response) == []

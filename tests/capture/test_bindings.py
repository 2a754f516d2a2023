from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from django_webhooks.capture.bindings import BindingRegistry, registry
from django_webhooks.exceptions import InvalidOwner, InvalidPayload
from django_webhooks.models import Event
from django_webhooks.owners import owner_accessor
from tests.models import Customer, Order

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("enqueued")]


@pytest.fixture
def catalog(settings):
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "EVENT_TYPES": {
            **settings.DJANGO_WEBHOOKS["EVENT_TYPES"],
            "customer.renamed": {},
            "customer.changed": {},
            "customer.vip": {},
        },
    }


@pytest.fixture
def local_registry():
    local = BindingRegistry()
    yield local
    for model in list(local._by_model):
        for binding in local.bindings_for(model):
            local.unregister(binding)


def events(event_type=None):
    queryset = Event.objects.order_by("id")
    return list(queryset.filter(event_type=event_type) if event_type else queryset)


def test_settings_bindings_are_loaded_in_ready():
    bound = {binding.event_type for binding in registry.bindings_for(Order)}
    assert bound == {"order.created", "order.updated", "order.deleted"}


def test_create_update_delete_each_fire_once(customer):
    order = Order.objects.create(customer=customer, number="A-1", total="25.00")
    created = events("order.created")
    assert len(created) == 1 and events("order.updated") == []
    assert created[0].owner_id == str(customer.user_id)
    assert created[0].payload["number"] == "A-1" and created[0].payload["customer_id"] == customer.pk

    order.status = Order.Status.PAID
    order.save()
    updated = events("order.updated")
    assert len(updated) == 1 and updated[0].payload["status"] == "paid"

    order_id = order.pk
    order.delete()
    deleted = events("order.deleted")
    assert len(deleted) == 1
    assert deleted[0].payload["id"] == order_id and deleted[0].payload["number"] == "A-1"
    assert deleted[0].owner_id == str(customer.user_id)
    assert len(events()) == 3


def test_cascade_delete_records_the_child_event_with_its_owner(customer):
    order = Order.objects.create(customer=customer, number="A-2", total="1.00")
    customer.delete()
    deleted = events("order.deleted")
    assert [(event.payload["id"], event.owner_id) for event in deleted] == [(order.pk, str(customer.user_id))]


def test_raw_saves_from_fixtures_record_nothing(customer):
    from django.utils import timezone

    Order(customer=customer, number="A-3", total="1.00", created_at=timezone.now()).save_base(raw=True)
    assert events("order.updated") == [] and events("order.created") == []


def test_update_with_fields_fires_only_when_they_change(catalog, local_registry, customer):
    local_registry.register(Customer, on="update", event_type="customer.renamed", fields=["name"])
    customer = Customer.objects.get(pk=customer.pk)

    customer.email = "new@example.com"
    customer.save()
    assert events("customer.renamed") == []

    customer.name = "Alice B"
    customer.save()
    assert len(events("customer.renamed")) == 1

    customer.save()  # nothing changed since the last save
    assert len(events("customer.renamed")) == 1

    customer.name = "Alice C"
    customer.save(update_fields=["email"])  # name changed in memory but not written
    assert len(events("customer.renamed")) == 1
    customer.save(update_fields=["name"])
    assert len(events("customer.renamed")) == 2


def test_fields_tracks_foreign_keys_by_id(catalog, local_registry, customer):
    local_registry.register(Customer, on=["update"], event_type="customer.changed", fields=["user"])
    other = User.objects.create(username="bob")
    customer = Customer.objects.get(pk=customer.pk)
    customer.name = "renamed"
    customer.save()
    assert events("customer.changed") == []
    customer.user = other
    customer.save(update_fields=["user"])
    assert [event.payload["user_id"] for event in events("customer.changed")] == [other.pk]


def test_condition_decides_per_change(catalog, local_registry, customer):
    seen = []

    def is_vip(instance, change):
        seen.append(change)
        return instance.name.endswith("VIP")

    local_registry.register(Customer, on=["create", "update", "delete"], event_type="customer.vip", condition=is_vip)
    Customer.objects.create(user=customer.user, name="plain")
    vip = Customer.objects.create(user=customer.user, name="Carol VIP")
    vip.email = "c@example.com"
    vip.save()
    vip.delete()
    assert seen == ["create", "create", "update", "delete"]
    assert len(events("customer.vip")) == 3


def test_custom_payload_and_callable_owner(catalog, local_registry, customer):
    local_registry.register(
        "testapp.Customer",
        on="create",
        event_type="customer.changed",
        payload=lambda instance: {"name": instance.name},
        owner=lambda instance: instance.user,
    )
    Customer.objects.create(user=customer.user, name="Dan")
    (event,) = events("customer.changed")
    assert event.payload == {"name": "Dan"} and event.owner_id == str(customer.user_id)


def test_owner_path_reads_the_foreign_key_without_fetching_the_owner(customer, django_assert_num_queries):
    order = Order(customer=customer, number="A-4", total="2.00")
    with django_assert_num_queries(0):
        assert owner_accessor("customer.user")(order) == str(customer.user_id)
    assert owner_accessor("customer.missing")(order) is None


def test_unregister_stops_events(catalog, local_registry, customer):
    binding = local_registry.register(Customer, on="update", event_type="customer.changed")
    local_registry.unregister(binding)
    customer.save()
    assert events("customer.changed") == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"model": "testapp.Nope", "on": ["create"], "event_type": "x.y"},
            r"BINDINGS'\]\[0\].*no model 'testapp.Nope'",
        ),
        ({"model": "testapp.Order", "on": ["save"], "event_type": "x.y"}, "'on' must be"),
        (
            {"model": "testapp.Order", "on": ["update"], "event_type": "x.y", "fields": ["nope"]},
            "not a field of testapp.Order",
        ),
        (
            {"model": "testapp.Order", "on": ["create"], "event_type": "x.y", "fields": ["status"]},
            "only applies to 'update'",
        ),
        ({"model": "testapp.Order", "on": ["create"], "event_type": "x.y", "condition": "no.such.func"}, "condition"),
        ({"model": "testapp.Order", "on": ["create"], "event_type": "x.y", "colour": "red"}, "unknown key"),
        ({"model": "testapp.Order", "event_type": "x.y"}, "missing on"),
        (
            {"model": "testapp.Order", "on": ["create"], "event_type": "x.y", "owner": "customer"},
            "owner path 'customer' cannot give an owner: it leads to testapp.Customer, not to auth.User",
        ),
    ],
)
def test_bad_bindings_name_the_problem(settings, spec, message):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "BINDINGS": [spec]}
    local = BindingRegistry()
    with pytest.raises(ImproperlyConfigured, match=message):
        local.load_from_settings()


def test_load_from_settings_touches_no_database(django_assert_num_queries):
    local = BindingRegistry()
    with django_assert_num_queries(0):
        loaded = local.load_from_settings()
    assert len(loaded) == 3
    for binding in loaded:
        local.unregister(binding)


# --- bad payloads and owners: refused before the change commits ---------------------------------


@pytest.fixture
def nan_payload(catalog, local_registry):
    """``customer.changed`` on every Customer save, with data JSON cannot carry when the name says so."""

    def payload(customer):
        return {"name": customer.name, "score": float("nan") if customer.name == "NaN" else 1.0}

    local_registry.register(Customer, on=["create", "update"], event_type="customer.changed", payload=payload)


@pytest.mark.django_db(transaction=True)
def test_an_autocommit_save_with_a_bad_payload_is_refused_before_it_is_written(customer, nan_payload):
    with pytest.raises(InvalidPayload, match=r"\$\.score: nan is not a JSON number"):
        Customer.objects.create(user=customer.user, name="NaN")
    assert not Customer.objects.filter(name="NaN").exists()
    customer.name = "NaN"
    with pytest.raises(InvalidPayload):
        customer.save()
    customer.refresh_from_db()
    assert customer.name == "Alice"
    assert events("customer.changed") == []


@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_a_bad_payload_rolls_the_change_back(customer, nan_payload):
    with pytest.raises(InvalidPayload), transaction.atomic():
        Customer.objects.create(user=customer.user, name="NaN")
    assert not Customer.objects.filter(name="NaN").exists()
    assert events("customer.changed") == []


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_an_autocommit_save_is_recorded_not_dropped(catalog, local_registry, customer, caplog):
    """A payload that only fails once the row exists (it depends on the new pk) cannot be refused
    before the commit: the event is recorded with its error, shown in the admin, never sent."""

    def payload(instance):
        return {"id": instance.pk, "ratio": float("inf") if instance.pk else 1.0}

    local_registry.register(Customer, on="create", event_type="customer.changed", payload=payload)
    created = Customer.objects.create(user=customer.user, name="Bob")
    (event,) = events("customer.changed")
    assert event.payload == {"id": created.pk, "ratio": None}
    assert event.schema_errors == ["payload: $.ratio: inf is not a JSON number"]
    assert "it will not be sent" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_a_callable_owner_of_the_wrong_model_is_refused_before_the_save(catalog, local_registry, customer):
    local_registry.register(Customer, on="create", event_type="customer.changed", owner=lambda c: c)
    with pytest.raises(InvalidOwner):
        Customer.objects.create(user=customer.user, name="Eve")
    assert not Customer.objects.filter(name="Eve").exists()

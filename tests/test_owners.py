"""Owner keys and lookups (django_webhooks/owners.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from django_webhooks.exceptions import InvalidOwner
from django_webhooks.owners import get_owner, get_owners, owner_accessor, owner_key, owner_path_problem
from tests.models import Order

pytestmark = pytest.mark.django_db


def test_get_owners_loads_every_known_key_in_one_query(django_assert_num_queries):
    alice = get_user_model().objects.create(username="alice")
    bob = get_user_model().objects.create(username="bob")
    with django_assert_num_queries(1):
        owners = get_owners([owner_key(alice), owner_key(bob), owner_key(bob), None, "999999"])
    assert owners == {str(alice.pk): alice, str(bob.pk): bob}


@pytest.mark.parametrize("key", ["not-a-number", "", None, "999999"])
def test_get_owner_is_none_for_keys_without_an_owner(key):
    assert get_owner(key) is None


def test_get_owner_finds_the_owner_by_its_stored_key():
    alice = get_user_model().objects.create(username="alice")
    assert get_owner(owner_key(alice)) == alice


def test_owner_keys_longer_than_the_column_are_refused():
    assert owner_key("1" * 64) == "1" * 64
    with pytest.raises(InvalidOwner, match="65 characters; at most 64"):
        owner_key("1" * 65)


@pytest.mark.django_db
def test_an_instance_of_another_model_is_not_an_owner(customer):
    """A Customer with pk 1 must never reach the subscriptions of User 1."""
    with pytest.raises(InvalidOwner, match="is a testapp.Customer; owners are auth.User instances"):
        owner_key(customer)


@pytest.mark.parametrize("key", ["abc", "1.5", "\x00", 1.0, True, b"1", object()])
def test_keys_that_are_not_primary_keys_of_the_owner_model_are_refused(key):
    with pytest.raises(InvalidOwner):
        owner_key(key)


def test_primary_keys_of_the_owner_model_are_owners():
    assert owner_key(7) == "7"
    assert owner_key("7") == "7"


@pytest.mark.django_db
def test_an_owner_path_to_another_model_is_refused_when_used(customer):
    order = Order(customer=customer, number="A-1", total="1.00")
    assert owner_accessor("customer.user")(order) == str(customer.user_id)
    with pytest.raises(InvalidOwner, match="foreign key to testapp.Customer, not to auth.User"):
        owner_accessor("customer")(order)


def test_owner_path_problems_are_found_from_the_model_fields():
    assert owner_path_problem(Order, "customer.user") is None
    assert "leads to testapp.Customer" in owner_path_problem(Order, "customer")
    assert "not a relation" in owner_path_problem(Order, "number.user")
    assert owner_path_problem(Order, "owner_property") is None  # known only at run time

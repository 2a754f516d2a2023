"""Owner keys and lookups (django_webhooks/owners.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from django_webhooks.owners import get_owner, get_owners, owner_key

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
    assert owner_key("x" * 64) == "x" * 64
    with pytest.raises(ValueError, match="65 characters; at most 64"):
        owner_key("x" * 65)

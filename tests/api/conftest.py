"""Fixtures of the REST API tests (django_webhooks/api/): an owner, her client, fresh throttles."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache

from tests.api import client_for


@pytest.fixture(autouse=True)
def fresh_throttle_history():
    """Throttle counters live in the cache; every test starts with none."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def alice(db):
    """An owner; her password is for the Basic-auth tests."""
    return get_user_model().objects.create_user("alice", password="alice-pass")


@pytest.fixture
def client(alice):
    """DRF's APIClient authenticated as ``alice``."""
    return client_for(alice)

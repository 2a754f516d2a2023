"""Rate limits from API_THROTTLE_RATES (django_webhooks/api/throttling.py)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from tests.api import API, client_for

pytestmark = pytest.mark.django_db


def rates(**scopes):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "API_THROTTLE_RATES": scopes})


@pytest.fixture
def alice_subscription(alice, make_subscription):
    return make_subscription(owner_id=str(alice.pk))


def test_the_general_scope_limits_every_endpoint_per_user(client):
    with rates(webhooks="3/min", webhooks_actions="1/min"):
        codes = [client.get(f"{API}/event-types/").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        throttled = client.get(f"{API}/subscriptions/")
        assert throttled.status_code == 429
        assert int(throttled["Retry-After"]) > 0
        assert "throttled" in throttled.json()["detail"].lower()
        assert client_for(get_user_model().objects.create_user("bob")).get(f"{API}/subscriptions/").status_code == 200


@pytest.mark.parametrize(
    "path,body",
    [("test/", {}), ("recover/", {"since": "2020-01-01T00:00:00Z"}), ("rotate-secret/", {"overlap_seconds": 0})],
)
def test_actions_have_a_stricter_scope(client, alice_subscription, path, body):
    url = f"{API}/subscriptions/{alice_subscription.pk}/{path}"
    with rates(webhooks="100/min", webhooks_actions="2/min"):
        codes = [client.post(url, body, format="json").status_code for _ in range(3)]
        assert set(codes[:2]) <= {200, 202} and codes[2] == 429
        assert client.get(f"{API}/subscriptions/{alice_subscription.pk}/").status_code == 200


def test_resend_is_under_the_stricter_scope(client, alice_subscription, make_delivery):
    delivery = make_delivery(alice_subscription)
    url = f"{API}/deliveries/{delivery.pk}/resend/"
    with rates(webhooks="100/min", webhooks_actions="1/min"):
        assert [client.post(url).status_code for _ in range(2)] == [202, 429]
        assert client.get(f"{API}/deliveries/{delivery.pk}/").status_code == 200


def test_a_scope_left_out_of_the_setting_is_not_limited(client):
    with rates(webhooks_actions="1/min"):
        assert {client.get(f"{API}/event-types/").status_code for _ in range(5)} == {200}


def test_default_rates_allow_ordinary_use(client):
    assert {client.get(f"{API}/event-types/").status_code for _ in range(20)} == {200}

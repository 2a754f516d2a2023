"""OAuth2 client credentials against a real authorization server on loopback (tests/oauth_server)."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from django_webhooks.delivery import oauth
from django_webhooks.models import DeliveryAttempt, DeliveryStatus, ErrorClass, OAuthToken
from django_webhooks.receiver_auth import OAuthClient, configure_auth, load_credentials
from django_webhooks.testing import drain
from tests.delivery.test_targets import DNS_ANSWERS
from tests.oauth_server import OAuthServer
from tests.receiver import Reply
from tests.ssrf_cases import FORBIDDEN_ADDRESSES, ODD_SPELLINGS, UNICODE_SPELLINGS, literal_url

pytestmark = pytest.mark.django_db(transaction=True)


def _pem(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


JWT_KEY = ec.generate_private_key(ec.SECP256R1())
JWT_PUBLIC = (
    JWT_KEY.public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)


@pytest.fixture(scope="module")
def server():
    started = OAuthServer(jwt_public_key=JWT_PUBLIC).start()
    yield started
    started.stop()


@pytest.fixture(autouse=True)
def no_remembered_tokens():
    oauth.forget_tokens()
    yield
    oauth.forget_tokens()


def oauth_subscription(make_subscription, server, **auth):
    subscription = make_subscription(url=server.url("/hook"))
    values = {
        "method": "oauth2",
        "token_url": server.token_url,
        "client_id": server.client_id,
        "client_secret": server.client_secret,
        "scope": "webhooks",
        **auth,
    }
    configure_auth(subscription, **values)
    return subscription


def token_requests(server) -> list[dict]:
    return server.stats()["token_requests"]


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_deliveries_carry_a_token_from_the_server(client_auth, server, make_subscription, make_delivery):
    before = len(token_requests(server))
    subscription = oauth_subscription(make_subscription, server, client_auth=client_auth)
    deliveries = [make_delivery(subscription) for _ in range(5)]
    drain()
    for delivery in deliveries:
        delivery.refresh_from_db()
        assert delivery.status == DeliveryStatus.SUCCEEDED
    requests = token_requests(server)[before:]
    assert len(requests) == 1 and requests[0]["status"] == 200
    posted = set(requests[0]["form"])
    assert ("client_secret" in posted) == (client_auth == "client_secret_post")
    hooks = server.stats()["hooks"]
    assert {hook["webhook_id"] for hook in hooks} >= {d.message_id for d in deliveries}
    # The token is stored encrypted, and never in an attempt.
    token = hooks[-1]["token"]
    row = OAuthToken.objects.get(receiver_auth__subscription=subscription)
    assert token not in row.encrypted
    for attempt in DeliveryAttempt.objects.filter(subscription=subscription):
        assert attempt.request_headers["Authorization"] == "<redacted>"
        assert token not in json.dumps(attempt.request_headers)


def test_private_key_jwt_with_kid(server, make_subscription, make_delivery):
    before = len(server.stats()["assertions"])
    subscription = oauth_subscription(
        make_subscription, server, client_auth="private_key_jwt", private_key=_pem(JWT_KEY), key_id="key-2026"
    )
    delivery = make_delivery(subscription)
    drain()
    delivery.refresh_from_db()
    assert delivery.status == DeliveryStatus.SUCCEEDED
    [assertion] = server.stats()["assertions"][before:]
    assert assertion == {"valid": True, "kid": "key-2026", "alg": "ES256"}


@pytest.mark.parametrize(
    ("key", "alg"),
    [(rsa.generate_private_key(65537, 2048), "RS256"), (ed25519.Ed25519PrivateKey.generate(), "EdDSA")],
)
def test_client_assertion_verifies_with_the_public_key(key, alg):
    from jwcrypto import jwk, jwt

    client = OAuthClient(1, "https://auth.example/token", "cid", "private_key_jwt", private_key=_pem(key), key_id="k")
    fields, headers = oauth.token_request(client, now=1_900_000_000)
    assert headers == {} and fields["client_assertion_type"] == oauth.JWT_BEARER_ASSERTION
    public = jwk.JWK.from_pem(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    token = jwt.JWT(jwt=fields["client_assertion"], key=public, check_claims=False)
    claims = json.loads(token.claims)
    assert json.loads(token.header)["alg"] == alg
    assert claims["iss"] == claims["sub"] == "cid" and claims["aud"] == "https://auth.example/token"
    assert claims["exp"] - claims["iat"] == oauth.ASSERTION_LIFETIME


def test_client_secret_basic_form_encodes_both_parts():
    client = OAuthClient(1, "https://a.example/t", "id:1", "client_secret_basic", client_secret="s p&")
    fields, headers = oauth.token_request(client)
    assert "client_secret" not in fields
    assert base64.b64decode(headers["Authorization"].removeprefix("Basic ")) == b"id%3A1:s%20p%26"


def test_audience_and_resource_are_sent():
    client = OAuthClient(1, "https://a.example/t", "c", "client_secret_post", "s", audience="api", resource="urn:r")
    fields, _ = oauth.token_request(client)
    assert fields["audience"] == "api" and fields["resource"] == "urn:r"


def test_a_revoked_token_is_replaced_once_without_spending_a_retry(server, make_subscription, make_delivery):
    subscription = oauth_subscription(make_subscription, server)
    first = make_delivery(subscription)
    drain()
    before = len(token_requests(server))
    assert server.revoke_all() >= 1
    refused_before = len(server.stats()["refused"])
    second = make_delivery(subscription)
    drain()
    second.refresh_from_db()
    first.refresh_from_db()
    assert first.status == second.status == DeliveryStatus.SUCCEEDED
    assert second.attempts == 1
    assert len(token_requests(server)) == before + 1
    assert len(server.stats()["refused"]) == refused_before + 1
    [attempt] = second.delivery_attempts.all()
    assert attempt.succeeded and attempt.response_status == 204


def test_a_failing_token_endpoint_is_an_auth_error_that_feeds_the_breaker(server, make_subscription, make_delivery):
    subscription = oauth_subscription(make_subscription, server, client_secret="wrong-secret-123")
    delivery = make_delivery(subscription)
    hooks_before = len(server.stats()["hooks"])
    drain()
    delivery.refresh_from_db()
    attempt = delivery.delivery_attempts.get()
    assert attempt.error_class == ErrorClass.AUTH
    assert "answered HTTP 401: invalid_client" in attempt.error_message
    assert "wrong-secret-123" not in attempt.error_message
    assert delivery.status == DeliveryStatus.PENDING and delivery.next_attempt_at is not None  # retried later
    subscription.refresh_from_db()
    assert subscription.consecutive_failures == 1
    assert len(server.stats()["hooks"]) == hooks_before  # nothing was sent to the receiver


def test_a_token_is_replaced_before_it_expires():
    from datetime import UTC, datetime, timedelta

    obtained = datetime(2026, 1, 1, tzinfo=UTC)
    assert oauth.usable_until(obtained, 3600) == obtained + timedelta(seconds=3540)
    assert oauth.usable_until(obtained, 10) == obtained + timedelta(seconds=8)


def test_workers_share_the_token_through_the_database(server, make_subscription, make_delivery):
    subscription = oauth_subscription(make_subscription, server)
    make_delivery(subscription)
    drain()
    before = len(token_requests(server))
    oauth.forget_tokens()  # another process: nothing in memory
    [credentials] = load_credentials([subscription.pk]).values()
    assert credentials.oauth is not None
    token = oauth.access_token(credentials.oauth)
    assert len(token_requests(server)) == before
    assert token == server.stats()["hooks"][-1]["token"]


@pytest.mark.parametrize("address", [address for address, _ in FORBIDDEN_ADDRESSES])
def test_token_urls_refused_like_targets_when_saved(address, settings, make_subscription):
    from django.core.exceptions import ValidationError

    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "ALLOW_LOOPBACK": False}
    subscription = make_subscription(url="http://93.184.215.14/hook")
    with pytest.raises(ValidationError) as raised:
        configure_auth(subscription, method="oauth2", token_url=literal_url(address), client_id="c", client_secret="s")
    assert "token_url" in raised.value.message_dict


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_token_urls_refused_at_request_time(url, settings):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "ALLOW_LOOPBACK": False}
    client = OAuthClient(1, url, "c", "client_secret_post", client_secret="s")
    with pytest.raises(oauth.TokenError) as raised:
        oauth.request_token(client)
    assert "loopback" in str(raised.value) or "link-local" in str(raised.value) or "this host" in str(raised.value)


@pytest.fixture
def strict_dns(settings):
    """Loopback refused, host names answered from ``DNS_ANSWERS`` (tests.delivery.test_targets.fake_resolver)."""
    DNS_ANSWERS.clear()
    settings.DJANGO_WEBHOOKS = {
        **settings.DJANGO_WEBHOOKS,
        "ALLOW_LOOPBACK": False,
        "RESOLVER": "tests.delivery.test_targets.fake_resolver",
    }
    yield DNS_ANSWERS
    DNS_ANSWERS.clear()


def _refused_when_saved(subscription, token_url: str) -> list[str]:
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as raised:
        configure_auth(subscription, method="oauth2", token_url=token_url, client_id="c", client_secret="s")
    return raised.value.message_dict["token_url"]


@pytest.mark.parametrize("url", ODD_SPELLINGS + UNICODE_SPELLINGS)
def test_odd_spellings_of_token_urls_are_refused_when_saved(url, strict_dns, make_subscription):
    subscription = make_subscription(url="http://93.184.215.14/hook")
    assert _refused_when_saved(subscription, url)


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES)
def test_token_url_names_resolving_to_forbidden_addresses_are_refused_when_saved(
    address, reason, strict_dns, make_subscription
):
    subscription = make_subscription(url="http://93.184.215.14/hook")
    strict_dns["tokens.example"] = ["93.184.215.14", address]  # every answer is vetted, not just the first
    [message] = _refused_when_saved(subscription, "https://tokens.example/token")
    assert f"tokens.example resolves to {address}, {reason}." in message


def _request_time_refusal(url: str) -> str:
    client = OAuthClient(1, url, "c", "client_secret_post", client_secret="s")
    with pytest.raises(oauth.TokenError) as raised:
        oauth.request_token(client)
    return str(raised.value)


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES)
def test_forbidden_token_urls_are_refused_at_request_time(address, reason, strict_dns):
    assert reason in _request_time_refusal(literal_url(address))
    # A name that resolved to a public address when it was saved and to this one now (rebinding).
    strict_dns["tokens.example"] = [address]
    assert f"tokens.example resolves to {address}, {reason}." in _request_time_refusal("https://tokens.example/t")


@pytest.mark.parametrize("url", UNICODE_SPELLINGS)
def test_unicode_spellings_of_token_urls_are_refused_at_request_time(url, strict_dns):
    strict_dns["localhost"] = ["127.0.0.1"]
    _request_time_refusal(url)  # refused, whichever check gets there first
    assert not any(host != "localhost" for host in strict_dns)


def test_a_token_endpoint_that_resolves_to_a_private_address_sends_nothing(
    strict_dns, make_subscription, make_delivery, receiver
):
    strict_dns["hooks.example"] = ["93.184.215.14"]
    subscription = make_subscription(url="http://hooks.example/hook")
    configure_auth(subscription, method="oauth2", token_url="http://tokens.example/t", client_id="c", client_secret="s")
    strict_dns["tokens.example"] = ["10.0.0.5"]  # after it was saved
    delivery = make_delivery(subscription)
    drain()
    attempt = delivery.delivery_attempts.get()
    assert attempt.error_class == ErrorClass.AUTH
    assert "tokens.example resolves to 10.0.0.5, a private address" in attempt.error_message
    assert receiver.received() == []


def test_a_redirect_from_the_token_endpoint_is_not_followed(server, receiver, make_subscription, make_delivery):
    """The token endpoint answers 302 to the real authorization server: no token is asked there."""
    receiver.script = [Reply(302, b"", headers={"Location": server.token_url})]
    subscription = oauth_subscription(make_subscription, server, token_url=receiver.url("/o/token/"))
    before = len(token_requests(server))
    hooks_before = len(server.stats()["hooks"])
    delivery = make_delivery(subscription)
    drain()
    attempt = delivery.delivery_attempts.get()
    assert attempt.error_class == ErrorClass.AUTH
    assert "answered HTTP 302" in attempt.error_message
    assert len(receiver.received("/o/token/")) == 1
    assert len(token_requests(server)) == before  # the Location was not followed
    assert len(server.stats()["hooks"]) == hooks_before


@pytest.mark.parametrize("client_auth", ["client_secret_basic", "client_secret_post"])
def test_a_token_endpoint_echoing_the_secret_does_not_get_it_stored(
    client_auth, receiver, make_subscription, make_delivery, caplog
):
    """An endpoint that quotes the request (the Basic header, the form) in its error_description."""
    secret = "cs-echo/secret+value=" + "7" * 200  # long enough to be cut where the message is truncated

    def echo(request):
        quoted = f"got {request.headers.get('authorization', '')} {request.body.decode()} {secret}"
        return Reply(401, json.dumps({"error": "invalid_client", "error_description": quoted}).encode())

    receiver.answer = echo
    subscription = make_subscription(url=receiver.url("/hook"))
    configure_auth(
        subscription,
        method="oauth2",
        token_url=receiver.url("/token"),
        client_id="webhooks-sender",
        client_auth=client_auth,
        client_secret=secret,
    )
    delivery = make_delivery(subscription)
    drain()
    attempt = delivery.delivery_attempts.get()
    assert attempt.error_class == ErrorClass.AUTH and "invalid_client (got " in attempt.error_message
    assert "<redacted>" in attempt.error_message
    [request] = receiver.received("/token")
    basic = request.headers.get("authorization", "").removeprefix("Basic ")
    form_secret = request.body.decode().partition("client_secret=")[2].partition("&")[0]
    stored = json.dumps([*DeliveryAttempt.objects.values(), *type(delivery).objects.values()], default=str)
    for text in [stored, caplog.text]:
        for credential in [secret, secret[:20], basic, form_secret]:
            assert not credential or credential not in text

from __future__ import annotations

import socket

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.test import override_settings
from rest_framework import serializers

from django_webhooks.exceptions import BlockedTarget, WebhooksConfigurationError
from django_webhooks.targets import (
    ResolvedTarget,
    loggable_url,
    resolve_target,
    target_validator,
    validate_target_url,
)
from tests.ssrf_cases import FORBIDDEN_ADDRESSES, ODD_SPELLINGS, literal_url

#: Host name -> addresses answered by :func:`fake_resolver`.
DNS_ANSWERS: dict[str, list[str]] = {}


def fake_resolver(host, port, *args, **kwargs):
    """A getaddrinfo stand-in answering from :data:`DNS_ANSWERS` (RESOLVER hook)."""
    if host not in DNS_ANSWERS:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    return [
        (socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
        for address in DNS_ANSWERS[host]
    ]


def webhooks(**overrides):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **overrides})


@pytest.fixture
def strict():
    """Loopback not allowed, answers from :func:`fake_resolver`."""
    DNS_ANSWERS.clear()
    with webhooks(ALLOW_LOOPBACK=False, RESOLVER="tests.test_targets.fake_resolver"):
        yield DNS_ANSWERS
    DNS_ANSWERS.clear()


def refusal(url: str) -> BlockedTarget:
    with pytest.raises(BlockedTarget) as info:
        resolve_target(url)
    return info.value


PUBLIC_ADDRESSES = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "64:ff9b::808:808", "2002:808:808::1"]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES)
def test_forbidden_address_literal_is_refused_without_dns(strict, address, reason):
    with pytest.raises(BlockedTarget) as info:
        validate_target_url(literal_url(address))
    assert info.value.error_class == "blocked_target"
    assert reason in str(info.value)
    assert refusal(literal_url(address)).error_class == "blocked_target"


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES)
def test_host_resolving_to_forbidden_address_is_refused(strict, address, reason):
    strict["hooks.example.com"] = [address]
    validate_target_url("https://hooks.example.com/hook")
    error = refusal("https://hooks.example.com/hook")
    assert error.error_class == "blocked_target"
    assert f"hooks.example.com resolves to {address}, " in str(error)
    assert reason in str(error)


@pytest.mark.parametrize("url", ODD_SPELLINGS)
def test_odd_spellings_of_forbidden_addresses_are_refused_without_dns(strict, url):
    with pytest.raises(BlockedTarget) as info:
        validate_target_url(url)
    assert info.value.error_class == "blocked_target"


def test_odd_spelling_message_names_the_address(strict):
    with pytest.raises(BlockedTarget, match=r"0x7f\.1 \(127\.0\.0\.1\) is a loopback address"):
        validate_target_url("http://0x7f.1/")


def test_odd_spelling_of_public_address_connects_to_the_parsed_address(strict):
    assert resolve_target("http://0x5d.0xb8.0xd8.0x22/").addresses == ("93.184.216.34",)


@pytest.mark.parametrize("address", PUBLIC_ADDRESSES)
def test_public_addresses_are_allowed(strict, address):
    strict["hooks.example.com"] = [address]
    target = resolve_target("https://hooks.example.com:8443/in")
    assert target == ResolvedTarget(scheme="https", host="hooks.example.com", port=8443, addresses=(address,))


def test_every_resolved_address_is_checked(strict):
    strict["hooks.example.com"] = ["93.184.216.34", "2606:4700:4700::1111", "10.0.0.5"]
    assert "resolves to 10.0.0.5, a private address" in str(refusal("https://hooks.example.com/"))


def test_ipv4_mapped_answers_are_dialled_as_ipv4(strict):
    strict["hooks.example.com"] = ["::ffff:8.8.8.8"]
    assert resolve_target("http://hooks.example.com/").addresses == ("8.8.8.8",)


def test_all_vetted_addresses_are_returned_once_each(strict):
    strict["hooks.example.com"] = ["93.184.216.34", "93.184.216.34", "2606:4700:4700::1111"]
    assert resolve_target("http://hooks.example.com/").addresses == ("93.184.216.34", "2606:4700:4700::1111")


def test_default_port_follows_scheme(strict):
    strict["hooks.example.com"] = ["93.184.216.34"]
    assert resolve_target("http://hooks.example.com/").port == 80
    assert resolve_target("https://hooks.example.com/").port == 443


def test_unresolvable_host_is_a_dns_error(strict):
    error = refusal("https://nowhere.example.com/")
    assert error.error_class == "dns"
    assert "nowhere.example.com could not be resolved" in str(error)


def test_host_without_addresses_is_a_dns_error(strict):
    strict["empty.example.com"] = []
    assert refusal("https://empty.example.com/").error_class == "dns"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "Only http and https"),
        ("file:///etc/passwd", "Only http and https"),
        ("gopher://example.com/", "Only http and https"),
        ("example.com/hook", "Only http and https"),
        ("http://a@127.0.0.1/", "user name or password"),
        ("http://user:pw@example.com/", "user name or password"),
        ("http://example.com@127.0.0.1/", "user name or password"),
        ("http:///hook", "no host"),
        ("http://example.com:0/", "port"),
        ("http://example.com:65536/", "port"),
        ("http://example.com:http/", "port"),
        ("http://example.com\\@127.0.0.1/", "backslash"),
        ("http://exa mple.com/", "spaces or control characters"),
        ("http://example.com/\r\nX-Injected: 1", "spaces or control characters"),
        ("http://exa%6dple.com/", "not a valid host name"),
        ("http://[::1/", "cannot be parsed"),
        ("", "empty"),
    ],
)
def test_malformed_urls_are_invalid_targets(strict, url, message):
    with pytest.raises(BlockedTarget, match=message) as info:
        validate_target_url(url)
    assert info.value.error_class == "invalid_target"


def test_localhost_names_are_refused_without_dns(strict):
    for url in ["http://localhost/", "http://LOCALHOST:8000/", "http://api.localhost/"]:
        with pytest.raises(BlockedTarget, match="loopback host name"):
            validate_target_url(url)


def test_https_required_when_configured():
    with webhooks(REQUIRE_HTTPS=True), pytest.raises(BlockedTarget, match="must use https"):
        validate_target_url("http://example.com/")
    with webhooks(REQUIRE_HTTPS=True):
        validate_target_url("https://example.com/")


@override_settings(DEBUG=False)
def test_https_required_by_default_outside_debug():
    with webhooks(REQUIRE_HTTPS=None), pytest.raises(BlockedTarget, match="must use https"):
        validate_target_url("http://example.com/")


@override_settings(DEBUG=True)
def test_plain_http_allowed_in_debug_by_default():
    with webhooks(REQUIRE_HTTPS=None):
        validate_target_url("http://example.com/")


def test_allow_loopback_allows_only_loopback():
    DNS_ANSWERS.clear()
    with webhooks(ALLOW_LOOPBACK=True, RESOLVER="tests.test_targets.fake_resolver"):
        assert resolve_target("http://127.0.0.5:8000/").addresses == ("127.0.0.5",)
        assert resolve_target("http://[::1]:8000/").addresses == ("::1",)
        validate_target_url("http://localhost/")
        for address in ["10.0.0.5", "169.254.169.254", "0.0.0.0", "fe80::1"]:
            assert refusal(literal_url(address)).error_class == "blocked_target"


def test_allowed_targets_cidr_opens_only_that_network(strict):
    with webhooks(
        ALLOW_LOOPBACK=False, RESOLVER="tests.test_targets.fake_resolver", ALLOWED_TARGETS=["10.1.0.0/16", "fd00::/8"]
    ):
        assert resolve_target("http://10.1.2.3/").addresses == ("10.1.2.3",)
        assert resolve_target("http://[fd00::5]/").addresses == ("fd00::5",)
        assert resolve_target("http://[::ffff:10.1.2.3]/").addresses == ("10.1.2.3",)
        assert "a private address" in str(refusal("http://10.2.0.1/"))
        assert "a loopback address" in str(refusal("http://127.0.0.1/"))


def test_allowed_targets_host_name_may_resolve_anywhere(strict):
    strict["hooks.internal"] = ["10.0.0.5"]
    strict["billing.corp.example"] = ["192.168.1.10"]
    strict["other.example"] = ["10.0.0.5"]
    with webhooks(
        ALLOW_LOOPBACK=False,
        RESOLVER="tests.test_targets.fake_resolver",
        ALLOWED_TARGETS=["hooks.internal", "*.corp.example"],
    ):
        assert resolve_target("http://hooks.internal/").addresses == ("10.0.0.5",)
        assert resolve_target("http://HOOKS.internal./").addresses == ("10.0.0.5",)
        assert resolve_target("http://billing.corp.example/").addresses == ("192.168.1.10",)
        assert refusal("http://other.example/").error_class == "blocked_target"
        assert refusal("http://corp.example.evil/").error_class == "dns"


@pytest.mark.parametrize("entries", [["10.0.0.0/33"], ["fd00::/129"], "10.0.0.0/8", [10]])
def test_malformed_allowed_targets_name_the_setting(strict, entries):
    with webhooks(ALLOWED_TARGETS=entries), pytest.raises(WebhooksConfigurationError, match="ALLOWED_TARGETS"):
        validate_target_url("http://10.0.0.1/")


def test_target_validator_turns_refusals_into_validation_errors(strict):
    strict["hooks.example.com"] = ["10.0.0.5"]
    with pytest.raises(ValidationError) as info:
        target_validator("https://hooks.example.com/")
    assert info.value.messages == ["hooks.example.com resolves to 10.0.0.5, a private address."]
    assert info.value.code == "blocked_target"
    strict["hooks.example.com"] = ["93.184.216.34"]
    target_validator("https://hooks.example.com/")


def test_target_validator_works_as_a_drf_field_validator(strict):
    class SubscriptionInput(serializers.Serializer):
        url = serializers.URLField(validators=[target_validator])

    strict["metadata.example.com"] = ["169.254.169.254"]
    rejected = SubscriptionInput(data={"url": "https://metadata.example.com/hook"})
    assert not rejected.is_valid()
    assert "169.254.169.254" in str(rejected.errors["url"][0])
    strict["hooks.example.com"] = ["93.184.216.34"]
    assert SubscriptionInput(data={"url": "https://hooks.example.com/hook"}).is_valid()


def test_loggable_url_drops_query_and_fragment():
    assert (
        loggable_url("https://hooks.example.com:8443/in/x?token=s3cret#frag") == "https://hooks.example.com:8443/in/x"
    )

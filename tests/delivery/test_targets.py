from __future__ import annotations

import csv
import ipaddress
import re
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import override_settings
from rest_framework import serializers

from django_webhooks.delivery import special_addresses
from django_webhooks.delivery.targets import (
    ResolvedTarget,
    allowed_target_problems,
    blocked_address_reason,
    is_host_name,
    loggable_url,
    resolve_target,
    target_validator,
    validate_target_url,
)
from django_webhooks.exceptions import BlockedTarget, WebhooksConfigurationError
from django_webhooks.models import Subscription
from tests.api import API, client_for
from tests.ssrf_cases import (
    ADDITIONAL_REFUSALS,
    EMBEDDED_REFUSALS,
    FORBIDDEN_ADDRESSES,
    ODD_SPELLINGS,
    REGISTRY_REACHABLE,
    REGISTRY_REFUSALS,
    UNICODE_SPELLINGS,
    literal_url,
)

DATA = Path(__file__).parents[1] / "data"
REGISTRY_FILES = ["iana-ipv4-special-registry-1.csv", "iana-ipv6-special-registry-1.csv"]

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
    with webhooks(ALLOW_LOOPBACK=False, RESOLVER="tests.delivery.test_targets.fake_resolver"):
        yield DNS_ANSWERS
    DNS_ANSWERS.clear()


def refusal(url: str) -> BlockedTarget:
    with pytest.raises(BlockedTarget) as info:
        resolve_target(url)
    return info.value


PUBLIC_ADDRESSES = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "2001:4860:4860::8888", "64:ff9b::808:808"]


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES, ids=[a for a, _ in FORBIDDEN_ADDRESSES])
def test_forbidden_address_literal_is_refused_without_dns(strict, address, reason):
    with pytest.raises(BlockedTarget) as info:
        validate_target_url(literal_url(address))
    assert info.value.error_class == "blocked_target"
    assert str(info.value).startswith(address) and str(info.value).endswith(f" is {reason}.")
    assert refusal(literal_url(address)).error_class == "blocked_target"


@pytest.mark.parametrize(("address", "reason"), FORBIDDEN_ADDRESSES, ids=[a for a, _ in FORBIDDEN_ADDRESSES])
def test_host_resolving_to_forbidden_address_is_refused(strict, address, reason):
    strict["hooks.example.com"] = [address]
    validate_target_url("https://hooks.example.com/hook")
    error = refusal("https://hooks.example.com/hook")
    assert error.error_class == "blocked_target"
    assert str(error) == f"hooks.example.com resolves to {address}, {reason}."


# -- the table against the IANA registries (tests/data/*.csv, the registries' CSV exports) --------


def registry_rows(filename):
    """``(network, name, rfc, globally reachable)`` per prefix of each row, footnote marks removed."""

    def clean(cell):
        return " ".join(re.sub(r"\s*\[\d+\]$", "", cell.strip()).split())

    with open(DATA / filename, newline="", encoding="utf-8") as file:
        for row in csv.DictReader(file):
            for prefix in clean(row["Address Block"]).split(","):
                yield (
                    ipaddress.ip_network(prefix.strip()),
                    clean(row["Name"]),
                    clean(row["RFC"]),
                    clean(row["Globally Reachable"]),
                )


ALL_ROWS = [row for filename in REGISTRY_FILES for row in registry_rows(filename)]
REFUSED_ENTRIES = REGISTRY_REFUSALS + ADDITIONAL_REFUSALS


@pytest.mark.parametrize(
    ("filename", "table"),
    [
        (REGISTRY_FILES[0], special_addresses.IPV4_SPECIAL_PURPOSE),
        (REGISTRY_FILES[1], special_addresses.IPV6_SPECIAL_PURPOSE),
    ],
)
def test_the_table_is_the_registry_row_by_row(filename, table):
    transcribed = [(block.network, block.name, block.rfc, block.globally_reachable) for block in table]
    assert transcribed == list(registry_rows(filename))


def representative(network):
    """An address of ``network`` that no more specific registry row holds: its middle one."""
    address = network[network.num_addresses // 2]
    assert not [other for other, *_ in ALL_ROWS if address in other and other.prefixlen > network.prefixlen]
    return address


@pytest.mark.parametrize(("network", "name", "rfc", "reachable"), ALL_ROWS, ids=[str(row[0]) for row in ALL_ROWS])
def test_every_registry_row_is_refused_unless_globally_reachable(strict, network, name, rfc, reachable):
    address = representative(network)
    if network == ipaddress.ip_network("::ffff:0:0/96"):
        # Never dialled as IPv6: the IPv4 address it carries decides.
        assert blocked_address_reason(address) == blocked_address_reason(address.ipv4_mapped)
        assert blocked_address_reason("::ffff:10.1.2.3") == "a private address, 10.1.2.3 in IPv6 form"
    elif reachable == "True":
        assert blocked_address_reason(address) is None
    else:
        assert blocked_address_reason(address)


def test_every_registry_entry_and_addition_has_its_cases():
    refused = {str(network) for network, *_, reachable in ALL_ROWS if reachable != "True"}
    reachable = {str(network) for network, *_, value in ALL_ROWS if value == "True"}
    assert sorted(block for block, *_ in REGISTRY_REFUSALS) == sorted(refused)
    assert sorted(block for block, _ in REGISTRY_REACHABLE) == sorted(reachable)
    assert [block for block, *_ in ADDITIONAL_REFUSALS] == [str(b.network) for b in special_addresses.ADDITIONS]
    for block, address, *_ in REGISTRY_REFUSALS + REGISTRY_REACHABLE + ADDITIONAL_REFUSALS:
        assert str(special_addresses.most_specific_block(ipaddress.ip_address(address)).network) == block, address


def test_every_refused_block_has_a_human_reason_and_reachable_ones_none():
    for block in special_addresses.ALL_BLOCKS:
        if block.refused:
            assert re.match(r"^(a|an|the) [A-Za-z0-9'(]", block.reason), block
        else:
            assert block.reason is None, block


@pytest.mark.parametrize(("block", "address", "reason"), REFUSED_ENTRIES, ids=[block for block, *_ in REFUSED_ENTRIES])
def test_every_refused_entry_is_refused_at_delivery_time(strict, block, address, reason):
    strict["hooks.example.com"] = [address]
    error = refusal("https://hooks.example.com/in")
    assert (error.error_class, str(error)) == ("blocked_target", f"hooks.example.com resolves to {address}, {reason}.")


@pytest.mark.parametrize(("block", "address"), REGISTRY_REACHABLE, ids=[block for block, _ in REGISTRY_REACHABLE])
def test_globally_reachable_entries_are_allowed_even_inside_refused_blocks(strict, block, address):
    strict["hooks.example.com"] = [address]
    assert resolve_target("https://hooks.example.com/in").addresses == (address,)
    assert resolve_target(literal_url(address)).addresses == (address,)


def test_the_most_specific_entry_decides(strict):
    assert blocked_address_reason("192.0.0.9") is None
    assert blocked_address_reason("192.0.0.11") == "an IETF protocol assignment address"
    assert blocked_address_reason("192.0.0.7") == "an IPv4 service continuity (DS-Lite) address"
    assert blocked_address_reason("2001:1::1") is None
    assert blocked_address_reason("2001:1::4") == "an IETF protocol assignment address"
    assert blocked_address_reason("2001:3:ffff::1") is None
    assert blocked_address_reason("2001:4::1") == "an IETF protocol assignment address"
    assert blocked_address_reason("0.0.0.0") == "the 'this host' address"
    assert blocked_address_reason("0.0.0.1") == "a 'this network' address"


# -- IPv6 forms that carry IPv4 addresses --------------------------------------------------------


@pytest.mark.parametrize(("address", "reason"), EMBEDDED_REFUSALS, ids=[a for a, _ in EMBEDDED_REFUSALS])
def test_embedded_ipv4_is_vetted_even_when_the_ipv6_form_is_allow_listed(strict, address, reason):
    with webhooks(ALLOWED_TARGETS=["::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "2002::/16", "2001::/32"]):
        assert blocked_address_reason(address) == reason


def test_allow_listed_translation_and_tunnel_prefixes_reach_public_ipv4(strict):
    with webhooks(ALLOWED_TARGETS=["64:ff9b:1::/48", "2002::/16", "2001::/32"]):
        for address in ["64:ff9b:1::808:808", "2002:808:808::1", "2001:0:4136:e378:8000:63bf:f7f7:f7f7"]:
            assert resolve_target(literal_url(address)).addresses == (address,)
    assert blocked_address_reason("64:ff9b::808:808") is None


@pytest.mark.parametrize("url", ODD_SPELLINGS + UNICODE_SPELLINGS)
def test_odd_spellings_of_forbidden_addresses_are_refused_without_dns(strict, url):
    with pytest.raises(BlockedTarget) as info:
        validate_target_url(url)
    assert info.value.error_class == "blocked_target"
    assert refusal(url).error_class == "blocked_target"


@pytest.mark.django_db
def test_unicode_spellings_of_loopback_are_refused_at_subscription_creation(strict):
    client = client_for(get_user_model().objects.create_user("unicode"))
    for url in UNICODE_SPELLINGS:
        response = client.post(f"{API}/subscriptions/", {"url": url, "event_types": ["order.created"]}, format="json")
        assert response.status_code == 400, url
        assert "loopback" in response.json()["url"][0], url
    assert not Subscription.objects.exists()


def test_odd_spelling_message_names_the_address(strict):
    with pytest.raises(BlockedTarget, match=r"0x7f\.1 \(127\.0\.0\.1\) is a loopback address"):
        validate_target_url("http://0x7f.1/")
    with pytest.raises(
        BlockedTarget, match=r"^\uff11\uff12\uff17\.\uff10\.\uff10\.\uff11 \(127\.0\.0\.1\) is a loopback"
    ):
        validate_target_url("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/")


def test_unicode_host_names_are_looked_up_in_their_idna_form(strict):
    strict["xn--bcher-kva.example"] = ["93.184.216.34"]
    assert resolve_target("https://b\u00fccher.example/").addresses == ("93.184.216.34",)
    strict["xn--bcher-kva.example"] = ["10.0.0.5"]
    assert (
        str(refusal("https://b\u00fccher.example/")) == "b\u00fccher.example resolves to 10.0.0.5, a private address."
    )


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
    with webhooks(ALLOW_LOOPBACK=True, RESOLVER="tests.delivery.test_targets.fake_resolver"):
        assert resolve_target("http://127.0.0.5:8000/").addresses == ("127.0.0.5",)
        assert resolve_target("http://[::1]:8000/").addresses == ("::1",)
        validate_target_url("http://localhost/")
        for address in ["10.0.0.5", "169.254.169.254", "0.0.0.0", "fe80::1"]:
            assert refusal(literal_url(address)).error_class == "blocked_target"


def test_allowed_targets_cidr_opens_only_that_network(strict):
    with webhooks(
        ALLOW_LOOPBACK=False,
        RESOLVER="tests.delivery.test_targets.fake_resolver",
        ALLOWED_TARGETS=["10.1.0.0/16", "fd00::/8"],
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
        RESOLVER="tests.delivery.test_targets.fake_resolver",
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


def test_allowed_targets_problems_one_per_bad_entry():
    assert allowed_target_problems(["10.1.0.0/16", "fd00::/8", "192.168.1.7", "hooks.internal", "*.corp.example"]) == []
    problems = allowed_target_problems(["10.1.2.3/16", "hooks internal", 10, "ok.example", "0x7f.1"])
    assert len(problems) == 4
    assert "'10.1.2.3/16' is not a valid network: 10.1.2.3/16 has host bits set" in problems[0]
    assert "'hooks internal' is not a valid host name" in problems[1]
    assert "10 is not a string" in problems[2]
    assert "'0x7f.1' is not a valid network" in problems[3]
    assert allowed_target_problems("10.0.0.0/8") == [
        'DJANGO_WEBHOOKS["ALLOWED_TARGETS"] must be a list of CIDRs and host names, not str.'
    ]


def test_a_cidr_with_host_bits_is_refused_at_run_time_too(strict):
    with webhooks(ALLOWED_TARGETS=["10.1.2.3/16"]), pytest.raises(WebhooksConfigurationError) as info:
        validate_target_url("http://10.1.2.3/")
    assert str(info.value) == allowed_target_problems(["10.1.2.3/16"])[0]


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("hooks.example.com", True),
        ("HOOKS.example.com", True),
        ("_dmarc.example.com", True),
        ("a" * 63 + ".com", True),
        ("a" * 64 + ".com", False),
        (".".join(["a" * 9] * 26), False),  # 259 characters
        ("hooks..example", False),
        ("-hooks.example", False),
        ("hooks.example\n", False),
        ("", False),
    ],
)
def test_host_names(name, valid):
    assert is_host_name(name) is valid


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


def test_allowed_ports_default_to_any_port(strict):
    strict["hooks.example.com"] = ["93.184.216.34"]
    assert resolve_target("https://hooks.example.com:8080/").port == 8080


def test_allowed_ports_are_enforced_before_every_request(strict):
    strict["hooks.example.com"] = ["93.184.216.34"]
    with webhooks(ALLOWED_PORTS=[443, 80, 8443]):
        for url in ["https://hooks.example.com/", "http://hooks.example.com/", "https://hooks.example.com:8443/"]:
            assert resolve_target(url).addresses == ("93.184.216.34",)
        error = refusal("https://hooks.example.com:8080/in")
        assert (error.error_class, str(error)) == (
            "blocked_target",
            "Port 8080 is not allowed; webhooks go to ports 443, 80, 8443 only.",
        )
    with webhooks(ALLOWED_PORTS=[443]):
        assert str(refusal("http://hooks.example.com/")) == "Port 80 is not allowed; webhooks go to ports 443 only."


@pytest.mark.django_db
def test_allowed_ports_are_enforced_at_subscription_creation(strict):
    strict["hooks.example.com"] = ["93.184.216.34"]
    client = client_for(get_user_model().objects.create_user("ports"))

    def create(url):
        return client.post(f"{API}/subscriptions/", {"url": url, "event_types": ["order.created"]}, format="json")

    with webhooks(ALLOWED_PORTS=[443, 80, 8443]):
        response = create("https://hooks.example.com:8080/in")
        assert response.status_code == 400
        assert response.json()["url"] == ["Port 8080 is not allowed; webhooks go to ports 443, 80, 8443 only."]
        assert not Subscription.objects.exists()
        assert create("https://hooks.example.com:8443/in").status_code == 201


def test_loggable_url_drops_query_and_fragment():
    assert (
        loggable_url("https://hooks.example.com:8443/in/x?token=s3cret#frag") == "https://hooks.example.com:8443/in/x"
    )

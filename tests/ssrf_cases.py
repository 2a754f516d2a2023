"""Every address form the SSRF guard must refuse (../shared/REFERENCE.md), shared by the tests
of the guard itself, of subscription creation and of delivery time."""

from __future__ import annotations

#: One address in every entry of the IANA special-purpose registries (tests/data/) that is not
#: globally reachable: (entry, address, the refusal's reason). No more specific entry holds the
#: address, so the reason is the entry's own.
REGISTRY_REFUSALS = [
    ("0.0.0.0/8", "0.1.2.3", "a 'this network' address"),
    ("0.0.0.0/32", "0.0.0.0", "the 'this host' address"),
    ("10.0.0.0/8", "10.0.0.5", "a private address"),
    ("100.64.0.0/10", "100.64.0.1", "a carrier-grade NAT (shared) address"),
    ("127.0.0.0/8", "127.0.0.1", "a loopback address"),
    ("169.254.0.0/16", "169.254.169.254", "a link-local address (cloud metadata services live there)"),
    ("172.16.0.0/12", "172.31.255.254", "a private address"),
    ("192.0.0.0/24", "192.0.0.200", "an IETF protocol assignment address"),
    ("192.0.0.0/29", "192.0.0.1", "an IPv4 service continuity (DS-Lite) address"),
    ("192.0.0.8/32", "192.0.0.8", "the IPv4 dummy address"),
    ("192.0.0.170/32", "192.0.0.170", "a NAT64/DNS64 discovery address"),
    ("192.0.0.171/32", "192.0.0.171", "a NAT64/DNS64 discovery address"),
    ("192.0.2.0/24", "192.0.2.10", "a documentation address"),
    ("192.88.99.0/24", "192.88.99.1", "a 6to4 relay anycast address (deprecated)"),
    ("192.88.99.2/32", "192.88.99.2", "the 6a44 relay anycast address"),
    ("192.168.0.0/16", "192.168.1.1", "a private address"),
    ("198.18.0.0/15", "198.19.255.1", "a benchmarking address"),
    ("198.51.100.0/24", "198.51.100.7", "a documentation address"),
    ("203.0.113.0/24", "203.0.113.9", "a documentation address"),
    ("240.0.0.0/4", "240.0.0.1", "a reserved address"),
    ("255.255.255.255/32", "255.255.255.255", "the broadcast address"),
    ("::1/128", "::1", "a loopback address"),
    ("::/128", "::", "the unspecified address"),
    # Dialled as IPv4, so judged by the IPv4 address it carries.
    ("::ffff:0:0/96", "::ffff:127.0.0.1", "a loopback address, 127.0.0.1 in IPv6 form"),
    ("64:ff9b:1::/48", "64:ff9b:1::808:808", "a local-use NAT64 (IPv4/IPv6 translation) address"),
    ("100::/64", "100::1", "a discard-only address"),
    ("100:0:0:1::/64", "100:0:0:1::1", "a dummy-prefix address"),
    ("2001::/23", "2001:5::1", "an IETF protocol assignment address"),
    # Teredo server 65.54.227.120, client 8.8.8.8: both public, the prefix itself is refused.
    ("2001::/32", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "a Teredo tunnel address"),
    ("2001:2::/48", "2001:2::1", "a benchmarking address"),
    ("2001:10::/28", "2001:10::1", "a deprecated ORCHID address"),
    ("2001:db8::/32", "2001:db8::1", "a documentation address"),
    ("2002::/16", "2002:808:808::1", "a 6to4 tunnel address"),
    ("3fff::/20", "3fff::1", "a documentation address"),
    ("5f00::/16", "5f00::1", "a segment routing (SRv6) address"),
    ("fc00::/7", "fd12:3456::1", "a private (unique local) address"),
    ("fe80::/10", "fe80::1", "a link-local address"),
]

#: One address in every globally reachable registry entry; the more specific entry wins, so the
#: ones inside a refused block (192.0.0.0/24, 2001::/23) may be reached too.
REGISTRY_REACHABLE = [
    ("192.0.0.9/32", "192.0.0.9"),
    ("192.0.0.10/32", "192.0.0.10"),
    ("192.31.196.0/24", "192.31.196.1"),
    ("192.52.193.0/24", "192.52.193.1"),
    ("192.175.48.0/24", "192.175.48.1"),
    ("64:ff9b::/96", "64:ff9b::808:808"),
    ("2001:1::1/128", "2001:1::1"),
    ("2001:1::2/128", "2001:1::2"),
    ("2001:1::3/128", "2001:1::3"),
    ("2001:3::/32", "2001:3::1"),
    ("2001:4:112::/48", "2001:4:112::1"),
    ("2001:20::/28", "2001:20::1"),
    ("2001:30::/28", "2001:30::1"),
    ("2620:4f:8000::/48", "2620:4f:8000::1"),
]

#: One address in every block refused although the registries do not list it.
ADDITIONAL_REFUSALS = [
    ("224.0.0.0/4", "224.0.0.1", "a multicast address"),
    ("::/96", "::808:808", "an IPv4-compatible IPv6 address (deprecated)"),
    ("fec0::/10", "fec0::1", "a site-local address (deprecated)"),
    ("ff00::/8", "ff02::1", "a multicast address"),
]

#: IPv6 addresses carrying a refused IPv4 address, in every embedding the guard unpacks.
EMBEDDED_REFUSALS = [
    ("::ffff:10.0.0.5", "a private address, 10.0.0.5 in IPv6 form"),
    ("64:ff9b::a9fe:a9fe", "a link-local address (cloud metadata services live there), 169.254.169.254 in IPv6 form"),
    ("64:ff9b::a00:5", "a private address, 10.0.0.5 in IPv6 form"),
    ("64:ff9b:1::7f00:1", "a loopback address, 127.0.0.1 in IPv6 form"),
    ("2002:c0a8:101::1", "a private address, 192.168.1.1 in IPv6 form"),
    ("2002:7f00:1::1", "a loopback address, 127.0.0.1 in IPv6 form"),
    # Teredo: a private client (10.0.0.5, stored inverted), then a private server.
    ("2001:0:4136:e378:8000:63bf:f5ff:fffa", "a private address, 10.0.0.5 in IPv6 form"),
    ("2001:0:a00:5::f7f7:f7f7", "a private address, 10.0.0.5 in IPv6 form"),
]

#: Every refused form: (address, reason).
FORBIDDEN_ADDRESSES = [
    *((address, reason) for _, address, reason in REGISTRY_REFUSALS + ADDITIONAL_REFUSALS),
    *EMBEDDED_REFUSALS,
    ("172.16.0.1", "a private address"),
    ("198.18.0.1", "a benchmarking address"),
    ("239.255.255.250", "a multicast address"),
]

#: Odd spellings of loopback and link-local addresses.
ODD_SPELLINGS = [
    "http://2130706433/",
    "http://0x7f.1/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://127.0.1/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://127.0.0.1./",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://0/",
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://2852039166/",
]

#: Unicode digits and full stops that IDNA folds to ASCII: loopback again. (At delivery time
#: requests refuses these URLs itself, as invalid, before the guard sees them.)
UNICODE_SPELLINGS = [
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits
    "http://127\u30020\u30020\u30021/",  # ideographic full stops
    "http://127\uff0e0\uff0e0\uff0e1/",  # fullwidth full stops
    "http://127.0.0.1\u3002/",
    "http://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460/",  # circled digits
    "http://\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf/",  # mathematical bold digits
    "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3/",  # circled letters: localhost
]


def literal_url(address: str) -> str:
    return f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook"

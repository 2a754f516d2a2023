"""Address blocks a webhook must not reach, transcribed from the IANA special-purpose registries.

The source of truth is the pair of IANA registries (RFC 6890, RFC 8190):

* IPv4: https://www.iana.org/assignments/iana-ipv4-special-registry/
* IPv6: https://www.iana.org/assignments/iana-ipv6-special-registry/

Every row is listed as the registry gives it (prefix, Name, RFC, and the "Globally Reachable"
column), and every row whose Globally Reachable value is not ``True`` (``False``, ``N/A``, or empty
for a terminated entry) is refused. Rows nest (``192.0.0.9/32`` lies inside ``192.0.0.0/24``); as
the registries' footnotes say ("unless allowed by a more specific allocation"), the most specific
row containing an address decides, so the globally reachable anycast addresses inside the IETF
protocol assignment blocks stay reachable.

:data:`ADDITIONS` are refused although the special-purpose registries do not list them
(multicast, deprecated IPv4-compatible and site-local space), each with its own source.

The registries change a few times a year. To update: download ``iana-ipv4-special-registry-1.csv``
and ``iana-ipv6-special-registry-1.csv`` over ``tests/data/``, run ``tests/test_targets.py``
(it compares these tables with the files row by row), and edit the rows below until it passes.
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

IPV4_REGISTRY_URL = "https://www.iana.org/assignments/iana-ipv4-special-registry/"
IPV6_REGISTRY_URL = "https://www.iana.org/assignments/iana-ipv6-special-registry/"
#: The registries' "Last Updated" date for the version transcribed below.
REGISTRY_VERSION = "2025-10-09"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressBlock(NamedTuple):
    """One registry row (one prefix of it), or one of our :data:`ADDITIONS`."""

    network: IPNetwork
    #: The registry's Name and RFC columns, as IANA writes them.
    name: str
    rfc: str
    #: The registry's Globally Reachable column: "True", "False", "N/A", or "" (terminated).
    globally_reachable: str
    #: How a customer would call an address in it ("a private address"); None when it may be reached.
    reason: str | None

    @property
    def refused(self) -> bool:
        return self.globally_reachable != "True"


def _row(prefix: str, name: str, rfc: str, globally_reachable: str, reason: str | None = None) -> AddressBlock:
    return AddressBlock(ipaddress.ip_network(prefix), name, rfc, globally_reachable, reason)


# fmt: off
#: The IANA IPv4 Special-Purpose Address Registry, version :data:`REGISTRY_VERSION`.
IPV4_SPECIAL_PURPOSE: tuple[AddressBlock, ...] = (
    _row("0.0.0.0/8", '"This network"', "[RFC791], Section 3.2", "False", "a 'this network' address"),
    _row("0.0.0.0/32", '"This host on this network"', "[RFC1122], Section 3.2.1.3", "False",
         "the 'this host' address"),
    _row("10.0.0.0/8", "Private-Use", "[RFC1918]", "False", "a private address"),
    _row("100.64.0.0/10", "Shared Address Space", "[RFC6598]", "False", "a carrier-grade NAT (shared) address"),
    _row("127.0.0.0/8", "Loopback", "[RFC1122], Section 3.2.1.3", "False", "a loopback address"),
    _row("169.254.0.0/16", "Link Local", "[RFC3927]", "False",
         "a link-local address (cloud metadata services live there)"),
    _row("172.16.0.0/12", "Private-Use", "[RFC1918]", "False", "a private address"),
    _row("192.0.0.0/24", "IETF Protocol Assignments", "[RFC6890], Section 2.1", "False",
         "an IETF protocol assignment address"),
    _row("192.0.0.0/29", "IPv4 Service Continuity Prefix", "[RFC7335]", "False",
         "an IPv4 service continuity (DS-Lite) address"),
    _row("192.0.0.8/32", "IPv4 dummy address", "[RFC7600]", "False", "the IPv4 dummy address"),
    _row("192.0.0.9/32", "Port Control Protocol Anycast", "[RFC7723]", "True"),
    _row("192.0.0.10/32", "Traversal Using Relays around NAT Anycast", "[RFC8155]", "True"),
    _row("192.0.0.170/32", "NAT64/DNS64 Discovery", "[RFC8880][RFC7050], Section 2.2", "False",
         "a NAT64/DNS64 discovery address"),
    _row("192.0.0.171/32", "NAT64/DNS64 Discovery", "[RFC8880][RFC7050], Section 2.2", "False",
         "a NAT64/DNS64 discovery address"),
    _row("192.0.2.0/24", "Documentation (TEST-NET-1)", "[RFC5737]", "False", "a documentation address"),
    _row("192.31.196.0/24", "AS112-v4", "[RFC7535]", "True"),
    _row("192.52.193.0/24", "AMT", "[RFC7450]", "True"),
    _row("192.88.99.0/24", "Deprecated (6to4 Relay Anycast)", "[RFC7526]", "",
         "a 6to4 relay anycast address (deprecated)"),
    _row("192.88.99.2/32", "6a44-relay anycast address", "[RFC6751]", "False", "the 6a44 relay anycast address"),
    _row("192.168.0.0/16", "Private-Use", "[RFC1918]", "False", "a private address"),
    _row("192.175.48.0/24", "Direct Delegation AS112 Service", "[RFC7534]", "True"),
    _row("198.18.0.0/15", "Benchmarking", "[RFC2544]", "False", "a benchmarking address"),
    _row("198.51.100.0/24", "Documentation (TEST-NET-2)", "[RFC5737]", "False", "a documentation address"),
    _row("203.0.113.0/24", "Documentation (TEST-NET-3)", "[RFC5737]", "False", "a documentation address"),
    _row("240.0.0.0/4", "Reserved", "[RFC1112], Section 4", "False", "a reserved address"),
    _row("255.255.255.255/32", "Limited Broadcast", "[RFC8190] [RFC919], Section 7", "False",
         "the broadcast address"),
)

#: The IANA IPv6 Special-Purpose Address Registry, version :data:`REGISTRY_VERSION`.
#:
#: ``::ffff:0:0/96`` (IPv4-mapped) is never dialled as IPv6: the guard judges such an address by
#: the IPv4 address it carries, which is what the transport connects to.
IPV6_SPECIAL_PURPOSE: tuple[AddressBlock, ...] = (
    _row("::1/128", "Loopback Address", "[RFC4291]", "False", "a loopback address"),
    _row("::/128", "Unspecified Address", "[RFC4291]", "False", "the unspecified address"),
    _row("::ffff:0:0/96", "IPv4-mapped Address", "[RFC4291]", "False", "an IPv4-mapped address"),
    _row("64:ff9b::/96", "IPv4-IPv6 Translat.", "[RFC6052]", "True"),
    _row("64:ff9b:1::/48", "IPv4-IPv6 Translat.", "[RFC8215]", "False",
         "a local-use NAT64 (IPv4/IPv6 translation) address"),
    _row("100::/64", "Discard-Only Address Block", "[RFC6666]", "False", "a discard-only address"),
    _row("100:0:0:1::/64", "Dummy IPv6 Prefix", "[RFC9780]", "False", "a dummy-prefix address"),
    _row("2001::/23", "IETF Protocol Assignments", "[RFC2928]", "False", "an IETF protocol assignment address"),
    _row("2001::/32", "TEREDO", "[RFC4380] [RFC8190]", "N/A", "a Teredo tunnel address"),
    _row("2001:1::1/128", "Port Control Protocol Anycast", "[RFC7723]", "True"),
    _row("2001:1::2/128", "Traversal Using Relays around NAT Anycast", "[RFC8155]", "True"),
    _row("2001:1::3/128", "DNS-SD Service Registration Protocol Anycast", "[RFC9665]", "True"),
    _row("2001:2::/48", "Benchmarking", "[RFC5180][RFC Errata 1752]", "False", "a benchmarking address"),
    _row("2001:3::/32", "AMT", "[RFC7450]", "True"),
    _row("2001:4:112::/48", "AS112-v6", "[RFC7535]", "True"),
    _row("2001:10::/28", "Deprecated (previously ORCHID)", "[RFC4843]", "", "a deprecated ORCHID address"),
    _row("2001:20::/28", "ORCHIDv2", "[RFC7343]", "True"),
    _row("2001:30::/28", "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "[RFC9374]", "True"),
    _row("2001:db8::/32", "Documentation", "[RFC3849]", "False", "a documentation address"),
    _row("2002::/16", "6to4", "[RFC3056]", "N/A", "a 6to4 tunnel address"),
    _row("2620:4f:8000::/48", "Direct Delegation AS112 Service", "[RFC7534]", "True"),
    _row("3fff::/20", "Documentation", "[RFC9637]", "False", "a documentation address"),
    _row("5f00::/16", "Segment Routing (SRv6) SIDs", "[RFC9602]", "False", "a segment routing (SRv6) address"),
    _row("fc00::/7", "Unique-Local", "[RFC4193] [RFC8190]", "False", "a private (unique local) address"),
    _row("fe80::/10", "Link-Local Unicast", "[RFC4291]", "False", "a link-local address"),
)

#: Refused although the special-purpose registries do not list them; the name and RFC are those of
#: the registry named in the comment.
ADDITIONS: tuple[AddressBlock, ...] = (
    # IANA IPv4 Multicast Address Space Registry (multicast-addresses).
    _row("224.0.0.0/4", "Multicast", "[RFC5771]", "False", "a multicast address"),
    # IANA IPv6 Address Space (ipv6-address-space), 0000::/8 note [1]; deprecated by RFC 4291.
    _row("::/96", "IPv4-Compatible IPv6 Address", "[RFC4291], Section 2.5.5.1", "False",
         "an IPv4-compatible IPv6 address (deprecated)"),
    # IANA IPv6 Address Space (ipv6-address-space): "Reserved by IETF", formerly site-local.
    _row("fec0::/10", "Site-Local (deprecated)", "[RFC3879]", "False", "a site-local address (deprecated)"),
    # IANA IPv6 Address Space (ipv6-address-space).
    _row("ff00::/8", "Multicast", "[RFC4291]", "False", "a multicast address"),
)
# fmt: on

ALL_BLOCKS: tuple[AddressBlock, ...] = IPV4_SPECIAL_PURPOSE + IPV6_SPECIAL_PURPOSE + ADDITIONS


def _index(version: int) -> tuple[tuple[int, dict[int, AddressBlock]], ...]:
    """``(shift, {network number >> shift: block})`` per prefix length, longest prefix first."""
    bits = 32 if version == 4 else 128
    by_length: dict[int, dict[int, AddressBlock]] = {}
    for block in ALL_BLOCKS:
        if block.network.version != version:
            continue
        blocks = by_length.setdefault(block.network.prefixlen, {})
        key = int(block.network.network_address) >> (bits - block.network.prefixlen)
        if key in blocks:
            raise ValueError(f"{block.network} is listed twice.")
        blocks[key] = block
    return tuple((bits - length, by_length[length]) for length in sorted(by_length, reverse=True))


_INDEX = {4: _index(4), 6: _index(6)}


def most_specific_block(ip: IPAddress) -> AddressBlock | None:
    """The longest-prefix block containing ``ip``, or None when no block does.

    One dictionary lookup per distinct prefix length (about ten), so it is cheap enough to run
    before every request.
    """
    number = int(ip)
    for shift, blocks in _INDEX[ip.version]:
        block = blocks.get(number >> shift)
        if block is not None:
            return block
    return None

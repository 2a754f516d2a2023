"""Every address form the SSRF guard must refuse (../shared/REFERENCE.md), shared by the tests
of the guard itself, of subscription creation and of delivery time."""

from __future__ import annotations

# One address from every range in the reference list, plus the IPv6 forms that embed IPv4.
FORBIDDEN_ADDRESSES = [
    ("0.0.0.1", "this network"),
    ("10.0.0.5", "a private address"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("127.0.0.1", "a loopback address"),
    ("169.254.169.254", "link-local"),
    ("172.16.0.1", "a private address"),
    ("172.31.255.254", "a private address"),
    ("192.0.0.8", "IETF protocol"),
    ("192.0.2.10", "documentation"),
    ("192.88.99.1", "6to4 relay"),
    ("192.168.1.1", "a private address"),
    ("198.18.0.1", "benchmarking"),
    ("198.19.255.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::", "unspecified"),
    ("::1", "a loopback address"),
    ("::ffff:10.0.0.5", "a private address, 10.0.0.5 in IPv6 form"),
    ("::ffff:127.0.0.1", "a loopback address, 127.0.0.1 in IPv6 form"),
    ("64:ff9b::a9fe:a9fe", "link-local"),
    ("2002:c0a8:101::1", "a private address, 192.168.1.1 in IPv6 form"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fe80::1", "link-local"),
    ("ff02::1", "multicast"),
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


def literal_url(address: str) -> str:
    return f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook"

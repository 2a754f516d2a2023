"""The SSRF guard: which webhook target URLs may be reached, and at which vetted addresses.

Two steps, both raising :class:`~django_webhooks.exceptions.BlockedTarget`:

* :func:`validate_target_url` is cheap (no DNS) and runs when a subscription is saved: scheme,
  https policy, userinfo, port, and host names that are IP literals in any spelling
  ``inet_aton`` accepts (``2130706433``, ``0x7f.1``, ``127.1``) or IPv6 forms that embed an
  IPv4 address (``[::ffff:127.0.0.1]``).
* :func:`resolve_target` runs before every request: it resolves the host once, vets **every**
  address, and returns them so the transport connects to a vetted address without a second
  lookup (a DNS rebinding attack then has nothing to rebind).

``ALLOWED_TARGETS`` lists CIDRs and host names that may be reached although they are not
public; ``ALLOW_LOOPBACK`` allows 127.0.0.0/8 and ::1 only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

from .conf import SETTING_NAME, webhooks_settings
from .exceptions import BlockedTarget, WebhooksConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Error classes carried by BlockedTarget (values of models.ErrorClass).
INVALID_TARGET = "invalid_target"
BLOCKED_TARGET = "blocked_target"
DNS_ERROR = "dns"

_net = ipaddress.ip_network

#: Networks a delivery never reaches unless allow-listed, with how a customer would call them.
FORBIDDEN_NETWORKS: tuple[tuple[IPNetwork, str], ...] = (
    (_net("0.0.0.0/8"), "a 'this network' address"),
    (_net("10.0.0.0/8"), "a private address"),
    (_net("100.64.0.0/10"), "a carrier-grade NAT (shared) address"),
    (_net("127.0.0.0/8"), "a loopback address"),
    (_net("169.254.0.0/16"), "a link-local address (cloud metadata services live there)"),
    (_net("172.16.0.0/12"), "a private address"),
    (_net("192.0.0.0/24"), "an IETF protocol assignment address"),
    (_net("192.0.2.0/24"), "a documentation address"),
    (_net("192.88.99.0/24"), "a 6to4 relay anycast address"),
    (_net("192.168.0.0/16"), "a private address"),
    (_net("198.18.0.0/15"), "a benchmarking address"),
    (_net("198.51.100.0/24"), "a documentation address"),
    (_net("203.0.113.0/24"), "a documentation address"),
    (_net("224.0.0.0/4"), "a multicast address"),
    (_net("255.255.255.255/32"), "the broadcast address"),
    (_net("240.0.0.0/4"), "a reserved address"),
    (_net("::/128"), "the unspecified address"),
    (_net("::1/128"), "a loopback address"),
    (_net("::/96"), "an IPv4-compatible IPv6 address (deprecated)"),
    (_net("100::/64"), "a discard-only address"),
    (_net("2001:db8::/32"), "a documentation address"),
    (_net("fc00::/7"), "a private (unique local) address"),
    (_net("fe80::/10"), "a link-local address"),
    (_net("fec0::/10"), "a site-local address (deprecated)"),
    (_net("ff00::/8"), "a multicast address"),
)

_LOOPBACK_NETWORKS = (_net("127.0.0.0/8"), _net("::1/128"))
_IPV4_MAPPED = _net("::ffff:0:0/96")
_NAT64 = _net("64:ff9b::/96")
_SIX_TO_FOUR = _net("2002::/16")

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_HOST_LABEL_RE = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_INET_ATON_PART_RE = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


@dataclass(frozen=True)
class ResolvedTarget:
    """A target URL whose host resolved to ``addresses``, every one of them vetted."""

    scheme: str
    host: str
    port: int
    addresses: tuple[str, ...]


# -- URL checks (no DNS) ------------------------------------------------------------------------


def validate_target_url(url: str) -> None:
    """Refuse ``url`` unless it is a well-formed http(s) URL that may be delivered to.

    Does no DNS lookup; host names are vetted by :func:`resolve_target` before each request.
    """
    _parse_target(url)


def _parse_target(url: str) -> tuple[SplitResult, str, int, IPAddress | None]:
    if not isinstance(url, str) or not url:
        raise BlockedTarget("The URL is empty.", error_class=INVALID_TARGET)
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise BlockedTarget("The URL contains spaces or control characters.", error_class=INVALID_TARGET)
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise BlockedTarget(f"The URL cannot be parsed: {exc}.", error_class=INVALID_TARGET)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise BlockedTarget("Only http and https URLs can receive webhooks.", error_class=INVALID_TARGET)
    if scheme != "https" and webhooks_settings.require_https:
        raise BlockedTarget("The URL must use https.", error_class=INVALID_TARGET)
    if "\\" in parts.netloc:
        raise BlockedTarget("The URL's host contains a backslash.", error_class=INVALID_TARGET)
    if "@" in parts.netloc:
        raise BlockedTarget("The URL must not contain a user name or password.", error_class=INVALID_TARGET)
    try:
        port = parts.port
    except ValueError:
        raise BlockedTarget("The URL's port is not a number between 1 and 65535.", error_class=INVALID_TARGET)
    if port == 0:
        raise BlockedTarget("The URL's port is not a number between 1 and 65535.", error_class=INVALID_TARGET)
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise BlockedTarget("The URL has no host.", error_class=INVALID_TARGET)
    literal = ip_literal(host)
    if literal is None:
        _check_host_name(host)
    if not _host_allow_listed(host):
        if literal is not None:
            reason = blocked_address_reason(literal)
            if reason:
                spelled = host if host == str(literal) else f"{host} ({literal})"
                raise BlockedTarget(f"{spelled} is {reason}.", error_class=BLOCKED_TARGET)
        elif _is_localhost_name(host) and not webhooks_settings.ALLOW_LOOPBACK:
            raise BlockedTarget(f"{host} is a loopback host name.", error_class=BLOCKED_TARGET)
    return parts, host, port or (443 if scheme == "https" else 80), literal


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form ``inet_aton`` or an IPv6 parser accepts, else None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART_RE.match(part) for part in parts):
        return None
    values = [_inet_aton_number(part) for part in parts]
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(leading):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _inet_aton_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if part.startswith("0"):
        return int(part, 8)
    return int(part)


def _check_host_name(host: str) -> None:
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise BlockedTarget(f"{host!r} is not a valid host name.", error_class=INVALID_TARGET)
    if len(ascii_host) > 253 or not all(_HOST_LABEL_RE.match(label) for label in ascii_host.split(".")):
        raise BlockedTarget(f"{host!r} is not a valid host name.", error_class=INVALID_TARGET)


def _is_localhost_name(host: str) -> bool:
    name = host.lower()
    return name == "localhost" or name.endswith(".localhost")


# -- address ranges ------------------------------------------------------------------------------


def blocked_address_reason(address: IPAddress | str) -> str | None:
    """Why ``address`` may not be reached (\"a private address\"), or None when it may.

    IPv6 forms that carry an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by that IPv4
    address. ``ALLOWED_TARGETS`` CIDRs and ``ALLOW_LOOPBACK`` are honoured.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        ip = ipaddress.IPv6Address(str(ip).partition("%")[0])
    if _address_allow_listed(ip):
        return None
    embedded = embedded_ipv4(ip)
    if embedded is not None:
        reason = blocked_address_reason(embedded)
        return f"{reason}, {embedded} in IPv6 form" if reason else None
    for network, reason in FORBIDDEN_NETWORKS:
        if ip.version == network.version and ip in network:
            return reason
    return None


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, NAT64 (64:ff9b::/96) or 6to4 (2002::/16) address."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in _IPV4_MAPPED or ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _SIX_TO_FOUR:
        return ip.sixtofour
    return None


def _address_allow_listed(ip: IPAddress) -> bool:
    if webhooks_settings.ALLOW_LOOPBACK and any(
        ip.version == network.version and ip in network for network in _LOOPBACK_NETWORKS
    ):
        return True
    networks, _names = _allowed_targets()
    return any(ip.version == network.version and ip in network for network in networks)


def _host_allow_listed(host: str) -> bool:
    """Whether ``host`` is named in ``ALLOWED_TARGETS`` (exactly, or by a ``*.suffix`` entry)."""
    _networks, names = _allowed_targets()
    name = host.lower().rstrip(".")
    for allowed in names:
        if allowed.startswith("*."):
            if name.endswith(allowed[1:]):
                return True
        elif name == allowed:
            return True
    return False


def _allowed_targets() -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    entries = webhooks_settings.ALLOWED_TARGETS
    if not isinstance(entries, list | tuple) or not all(isinstance(entry, str) for entry in entries):
        raise WebhooksConfigurationError(f"{SETTING_NAME}['ALLOWED_TARGETS'] must be a list of strings.")
    return _parse_allowed_targets(tuple(entries))


@functools.lru_cache(maxsize=16)
def _parse_allowed_targets(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    networks: list[IPNetwork] = []
    names: list[str] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            if "/" in entry or ip_literal(entry) is not None:
                raise WebhooksConfigurationError(
                    f"{SETTING_NAME}['ALLOWED_TARGETS'] entry {entry!r} is not a valid CIDR."
                )
            names.append(entry.lower().rstrip("."))
    return tuple(networks), tuple(names)


# -- resolution ----------------------------------------------------------------------------------


def resolve_target(url: str) -> ResolvedTarget:
    """Validate ``url``, resolve its host once and vet every address it resolves to.

    The resolver is the ``RESOLVER`` setting (``socket.getaddrinfo`` by default). Raises
    :class:`BlockedTarget` with ``error_class`` ``"dns"`` when the host does not resolve and
    ``"blocked_target"`` when any address is not public.
    """
    parts, host, port, literal = _parse_target(url)
    scheme = parts.scheme.lower()
    if literal is not None:
        return ResolvedTarget(scheme=scheme, host=host, port=port, addresses=(_connect_address(literal),))
    resolver = webhooks_settings.RESOLVER
    try:
        infos = resolver(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BlockedTarget(f"The host {host} could not be resolved ({exc}).", error_class=DNS_ERROR)
    answers = [str(sockaddr[0]).partition("%")[0] for family, *_, sockaddr in infos if family in _IP_FAMILIES]
    if not answers:
        raise BlockedTarget(f"The host {host} has no IP address.", error_class=DNS_ERROR)
    if not _host_allow_listed(host):
        for answer in answers:
            reason = blocked_address_reason(answer)
            if reason:
                raise BlockedTarget(f"{host} resolves to {answer}, {reason}.", error_class=BLOCKED_TARGET)
    addresses = dict.fromkeys(_connect_address(ipaddress.ip_address(answer)) for answer in answers)
    return ResolvedTarget(scheme=scheme, host=host, port=port, addresses=tuple(addresses))


def _connect_address(ip: IPAddress) -> str:
    """The address to dial: an IPv4-mapped IPv6 address is dialled as plain IPv4."""
    mapped = getattr(ip, "ipv4_mapped", None)
    return str(mapped or ip)


def target_validator(value: Any) -> None:
    """A model/form/DRF field validator: the URL must be valid and resolve to allowed addresses.

    A host that does not resolve (yet) is accepted: :func:`resolve_target` vets it again before
    every request, and a DNS failure then is a retryable delivery error.
    """
    try:
        resolve_target(value)
    except BlockedTarget as exc:
        if exc.error_class != DNS_ERROR:
            raise ValidationError(str(exc), code=exc.error_class)


def loggable_url(url: str) -> str:
    """``url`` without its query string and fragment, which may carry credentials, for log lines."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

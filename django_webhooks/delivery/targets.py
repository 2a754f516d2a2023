"""The SSRF guard: which webhook target URLs may be reached, and at which vetted addresses.

Two steps, both raising :class:`~django_webhooks.exceptions.BlockedTarget`:

* :func:`validate_target_url` is cheap (no DNS) and runs when a subscription is saved: scheme,
  https policy, userinfo, port (and ``ALLOWED_PORTS``), and host names that are IP literals in
  any spelling ``inet_aton`` accepts (``2130706433``, ``0x7f.1``, ``127.1``), once IDNA has
  folded Unicode digits and full stops to ASCII (``１２７.０.０.１``), or IPv6 forms that embed
  an IPv4 address (``[::ffff:127.0.0.1]``).
* :func:`resolve_target` runs before every request: it resolves the host once, vets **every**
  address, and returns them so the transport connects to a vetted address without a second
  lookup (a DNS rebinding attack then has nothing to rebind).

Which addresses are refused is :mod:`django_webhooks.delivery.special_addresses`: every entry of the IANA
special-purpose registries that is not globally reachable, plus multicast and deprecated space.
An IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4, Teredo) is refused when
the IPv4 address is, whatever ``ALLOWED_TARGETS`` says about the IPv6 form.

``ALLOWED_TARGETS`` lists CIDRs and host names that may be reached although they are not
public; ``ALLOW_LOOPBACK`` allows 127.0.0.0/8 and ::1 only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import SplitResult, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

from ..conf import SETTING_NAME, webhooks_settings
from ..exceptions import BlockedTarget, WebhooksConfigurationError
from .special_addresses import IPAddress, IPNetwork, most_specific_block

#: Error classes carried by BlockedTarget (values of models.ErrorClass).
INVALID_TARGET = "invalid_target"
BLOCKED_TARGET = "blocked_target"
DNS_ERROR = "dns"

_LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))

# IPv6 forms that carry an IPv4 address, as the leading bits of the 128-bit number.
_IPV4_MAPPED_96 = int(ipaddress.IPv6Address("::ffff:0:0")) >> 32  # RFC 4291
_NAT64_WELL_KNOWN_96 = int(ipaddress.IPv6Address("64:ff9b::")) >> 32  # RFC 6052
_NAT64_LOCAL_USE_48 = int(ipaddress.IPv6Address("64:ff9b:1::")) >> 80  # RFC 8215
_TEREDO_32 = int(ipaddress.IPv6Address("2001::")) >> 96  # RFC 4380
_SIX_TO_FOUR_16 = int(ipaddress.IPv6Address("2002::")) >> 112  # RFC 3056
_LOW_32_BITS = 0xFFFFFFFF

_IP_FAMILIES = (socket.AF_INET, socket.AF_INET6)
_HOST_LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?", re.IGNORECASE)
_INET_ATON_PART_RE = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
ALLOWED_TARGETS_SETTING = f'{SETTING_NAME}["ALLOWED_TARGETS"]'


class _ParsedTarget(NamedTuple):
    parts: SplitResult
    #: The host as the URL spells it, and its IDNA (ASCII) form, which is what is looked up.
    host: str
    name: str
    port: int
    literal: IPAddress | None


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


def _parse_target(url: str) -> _ParsedTarget:
    """The checks of :func:`validate_target_url`, remembered per URL and the settings they read.

    Every request parses its URL again; a worker sends to few URLs, so the answer is kept
    (failures are not: they raise).
    """
    if not isinstance(url, str):
        return _check_target(url)
    ports, targets = webhooks_settings.ALLOWED_PORTS, webhooks_settings.ALLOWED_TARGETS
    try:
        key = (
            webhooks_settings.require_https,
            bool(webhooks_settings.ALLOW_LOOPBACK),
            None if ports is None else tuple(ports),
            tuple(targets),
        )
        hash(key)
    except TypeError:  # settings of the wrong types: checked (and reported) the long way
        return _check_target(url)
    return _cached_check(url, key)


@functools.lru_cache(maxsize=1024)
def _cached_check(url: str, settings_key: tuple[object, ...]) -> _ParsedTarget:
    return _check_target(url)


def _check_target(url: str) -> _ParsedTarget:
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
    name = host
    literal = ip_literal(host)
    if literal is None:
        name = _ascii_host_name(host)
        literal = ip_literal(name)
    port = port or (443 if scheme == "https" else 80)
    allowed_ports = webhooks_settings.ALLOWED_PORTS
    if allowed_ports is not None and port not in allowed_ports:
        raise BlockedTarget(
            f"Port {port} is not allowed; webhooks go to ports {', '.join(str(p) for p in allowed_ports)} only.",
            error_class=BLOCKED_TARGET,
        )
    if not _host_allow_listed(name):
        if literal is not None:
            reason = blocked_address_reason(literal)
            if reason:
                spelled = host if host == str(literal) else f"{host} ({literal})"
                raise BlockedTarget(f"{spelled} is {reason}.", error_class=BLOCKED_TARGET)
        elif _is_localhost_name(name) and not webhooks_settings.ALLOW_LOOPBACK:
            raise BlockedTarget(f"{host} is a loopback host name.", error_class=BLOCKED_TARGET)
    return _ParsedTarget(parts, host, name, port, literal)


def ip_literal(host: str) -> IPAddress | None:
    """The address ``host`` spells, in any form ``inet_aton`` or an IPv6 parser accepts, else None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_INET_ATON_PART_RE.fullmatch(part) for part in parts):
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


def _ascii_host_name(host: str) -> str:
    """``host`` in the ASCII form IDNA gives it (what ``getaddrinfo`` looks up), lower-cased.

    IDNA folds fullwidth and other compatibility digits and full stops (``１２７。０。０。１``) to
    ASCII, so the result may be an IP literal.
    """
    try:
        ascii_host = host.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise BlockedTarget(f"{host!r} is not a valid host name.", error_class=INVALID_TARGET)
    if not is_host_name(ascii_host):
        raise BlockedTarget(f"{host!r} is not a valid host name.", error_class=INVALID_TARGET)
    return ascii_host


def is_host_name(name: str) -> bool:
    """Whether ``name`` (ASCII, without a trailing dot) is a DNS host name: at most 253 characters
    of dot-separated labels of letters, digits, ``_`` and inner ``-`` (the rule for target URLs
    and for the names of ``ALLOWED_TARGETS``)."""
    return len(name) <= 253 and all(_HOST_LABEL_RE.fullmatch(label) for label in name.split("."))


def _is_localhost_name(host: str) -> bool:
    name = host.lower()
    return name == "localhost" or name.endswith(".localhost")


# -- address ranges ------------------------------------------------------------------------------


def blocked_address_reason(address: IPAddress | str) -> str | None:
    """Why ``address`` may not be reached (\"a private address\"), or None when it may.

    The most specific block of :mod:`~django_webhooks.delivery.special_addresses` containing the address
    decides, unless ``ALLOWED_TARGETS`` or ``ALLOW_LOOPBACK`` allows the address. An IPv6 address
    that carries IPv4 addresses (:func:`embedded_ipv4_addresses`) is refused when one of those is;
    an IPv4-mapped one is dialled as its IPv4 address, so that address alone decides.
    """
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if ip.version == 6:
        for embedded in embedded_ipv4_addresses(ip):
            reason = blocked_address_reason(embedded)
            if reason:
                return f"{reason}, {embedded} in IPv6 form"
        if int(ip) >> 32 == _IPV4_MAPPED_96:
            return None
    block = most_specific_block(ip)
    if block is None or block.reason is None or _address_allow_listed(ip):
        return None
    return block.reason


def embedded_ipv4_addresses(ip: IPAddress) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses inside an IPv6 address: IPv4-mapped (``::ffff:0:0/96``), NAT64 (the
    well-known ``64:ff9b::/96``, and the local-use ``64:ff9b:1::/48`` in the /96 form DNS64 uses),
    6to4 (``2002::/16``), Teredo (``2001::/32``: its server and its client).
    """
    if ip.version != 6:
        return ()
    number = int(ip)
    if number >> 32 in (_IPV4_MAPPED_96, _NAT64_WELL_KNOWN_96) or number >> 80 == _NAT64_LOCAL_USE_48:
        return (ipaddress.IPv4Address(number & _LOW_32_BITS),)
    if number >> 112 == _SIX_TO_FOUR_16:
        return (ipaddress.IPv4Address((number >> 80) & _LOW_32_BITS),)
    if number >> 96 == _TEREDO_32:
        return (ipaddress.IPv4Address((number >> 64) & _LOW_32_BITS), ipaddress.IPv4Address(~number & _LOW_32_BITS))
    return ()


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


def _is_network_entry(entry: str) -> bool:
    """Whether an ``ALLOWED_TARGETS`` entry is meant as a network (a CIDR or an address), not a name."""
    return "/" in entry or ":" in entry or entry.replace(".", "").isdigit() or ip_literal(entry) is not None


def _allowed_name(entry: str) -> str:
    """An ``ALLOWED_TARGETS`` host name entry as compared with target hosts (``*.`` kept)."""
    return entry.lower().rstrip(".")


def allowed_target_problems(entries: Any) -> list[str]:
    """What is wrong with an ``ALLOWED_TARGETS`` value, one message per bad entry (empty when valid).

    Entries are CIDRs or addresses (``10.1.0.0/16``, ``fd00::/8``, ``192.168.1.7``; no host bits
    set) and host names (``hooks.internal``, ``*.corp.example``). The system check E013 reports
    these messages; :func:`resolve_target` raises ``WebhooksConfigurationError`` with them.
    """
    if not isinstance(entries, list | tuple):
        return [f"{ALLOWED_TARGETS_SETTING} must be a list of CIDRs and host names, not {type(entries).__name__}."]
    problems = []
    for entry in entries:
        if not isinstance(entry, str):
            problems.append(f"{ALLOWED_TARGETS_SETTING} entry {entry!r} is not a string.")
        elif _is_network_entry(entry):
            try:
                ipaddress.ip_network(entry)
            except ValueError as exc:
                problems.append(f"{ALLOWED_TARGETS_SETTING} entry {entry!r} is not a valid network: {exc}.")
        elif not is_host_name(_allowed_name(entry).removeprefix("*.")):
            problems.append(f"{ALLOWED_TARGETS_SETTING} entry {entry!r} is not a valid host name.")
    return problems


def _allowed_targets() -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    entries = webhooks_settings.ALLOWED_TARGETS
    if not isinstance(entries, list | tuple) or not all(isinstance(entry, str) for entry in entries):
        raise WebhooksConfigurationError(" ".join(allowed_target_problems(entries)))
    return _parse_allowed_targets(tuple(entries))


@functools.lru_cache(maxsize=16)
def _parse_allowed_targets(entries: tuple[str, ...]) -> tuple[tuple[IPNetwork, ...], tuple[str, ...]]:
    problems = allowed_target_problems(entries)
    if problems:
        raise WebhooksConfigurationError(" ".join(problems))
    networks = tuple(ipaddress.ip_network(entry) for entry in entries if _is_network_entry(entry))
    names = tuple(_allowed_name(entry) for entry in entries if not _is_network_entry(entry))
    return networks, names


# -- resolution ----------------------------------------------------------------------------------


def resolve_target(url: str) -> ResolvedTarget:
    """Validate ``url``, resolve its host once and vet every address it resolves to.

    The resolver is the ``RESOLVER`` setting (``socket.getaddrinfo`` by default). Raises
    :class:`BlockedTarget` with ``error_class`` ``"dns"`` when the host does not resolve and
    ``"blocked_target"`` when any address is not public.
    """
    parts, host, name, port, literal = _parse_target(url)
    scheme = parts.scheme.lower()
    if literal is not None:
        return ResolvedTarget(scheme=scheme, host=host, port=port, addresses=(_connect_address(literal),))
    resolver = webhooks_settings.RESOLVER
    try:
        infos = resolver(name, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise BlockedTarget(f"The host {host} could not be resolved ({exc}).", error_class=DNS_ERROR)
    answers = [str(sockaddr[0]).partition("%")[0] for family, *_, sockaddr in infos if family in _IP_FAMILIES]
    if not answers:
        raise BlockedTarget(f"The host {host} has no IP address.", error_class=DNS_ERROR)
    ips = [ipaddress.ip_address(answer) for answer in answers]
    if not _host_allow_listed(name):
        for answer, ip in zip(answers, ips, strict=True):
            reason = blocked_address_reason(ip)
            if reason:
                raise BlockedTarget(f"{host} resolves to {answer}, {reason}.", error_class=BLOCKED_TARGET)
    addresses = dict.fromkeys(_connect_address(ip) for ip in ips)
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

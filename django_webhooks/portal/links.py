"""Signed portal links: a short-lived, single-use URL that opens a portal session for one owner.

For products whose customers log in elsewhere (a SaaS dashboard on another domain, a mobile
app): the host's backend calls :func:`portal_link` for the signed-in customer and redirects
them to it, or puts it in an iframe. The token is signed with ``django.core.signing`` (the
host's ``SECRET_KEY``, :data:`SALT`), names the owner, the scope and an expiry, and carries a
random nonce. Its first use is recorded as an :class:`~django_webhooks.models.AuditLogEntry`
whose ``link_nonce`` is unique, so a second use, however close in time and in whatever
process, fails at that ``INSERT``. :func:`revoke_portal_links` ends every link of an owner
issued until then, and every portal session those links opened.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core import signing
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from ..models import AuditAction, AuditLogEntry
from ..owners import get_owner, owner_key

SALT = "django_webhooks.portal.link"
#: What a link allows: everything the owner may do, or reading only (every POST is refused).
SCOPE_FULL = "full"
SCOPE_READ = "read"
SCOPES = (SCOPE_FULL, SCOPE_READ)
DEFAULT_EXPIRES_IN = timedelta(minutes=15)
#: Links are for a redirect or an iframe now, not for e-mail: a week at most.
MAX_EXPIRES_IN = timedelta(days=7)


@dataclass(frozen=True)
class PortalLink:
    """What a valid token says."""

    owner_id: str
    scope: str
    nonce: str
    issued_at: datetime
    expires_at: datetime

    @property
    def actor(self) -> str:
        """How the audit log names whoever uses this link."""
        return link_actor(self.owner_id)


class LinkRefused(Exception):
    """A token that opens nothing; ``reason`` is ``tampered``, ``expired``, ``reused`` or ``revoked``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def link_actor(owner_id: str) -> str:
    return f"portal link for owner {owner_id}"


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _from_millis(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def make_token(
    owner: Any,
    *,
    expires_in: timedelta | int = DEFAULT_EXPIRES_IN,
    scope: str = SCOPE_FULL,
    now: datetime | None = None,
) -> str:
    """The signed token of a new link for ``owner`` (an ``OWNER_MODEL`` instance or its key)."""
    key = owner_key(owner)
    if key is None:
        raise ValueError("A portal link needs an owner.")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}.")
    lifetime = expires_in if isinstance(expires_in, timedelta) else timedelta(seconds=expires_in)
    if not timedelta(0) < lifetime <= MAX_EXPIRES_IN:
        raise ValueError(f"expires_in must be more than 0 and at most {MAX_EXPIRES_IN}, not {lifetime}.")
    issued = now or timezone.now()
    payload = {
        "o": key,
        "s": scope,
        "n": secrets.token_urlsafe(18),
        "i": _millis(issued),
        "e": _millis(issued + lifetime),
    }
    return signing.dumps(payload, salt=SALT, compress=False)


def portal_link(
    owner: Any,
    *,
    expires_in: timedelta | int = DEFAULT_EXPIRES_IN,
    scope: str = SCOPE_FULL,
    request: HttpRequest | None = None,
) -> str:
    """A URL that opens the portal for ``owner``, once, within ``expires_in`` (seconds or a timedelta).

    ``scope="read"`` gives a session that may look at everything and change nothing. The URL is
    absolute when ``request`` is given, else a path on this site. Needs the portal's URLs
    mounted (``include("django_webhooks.portal.urls")``).
    """
    token = make_token(owner, expires_in=expires_in, scope=scope)
    path = reverse("django_webhooks_portal:enter", kwargs={"token": token})
    return request.build_absolute_uri(path) if request is not None else path


def read_token(token: str, now: datetime | None = None) -> PortalLink:
    """The link ``token`` describes; raises :class:`LinkRefused` (``tampered``, ``expired``)."""
    try:
        payload = signing.loads(token, salt=SALT)
        link = PortalLink(
            owner_id=str(payload["o"]),
            scope=str(payload["s"]),
            nonce=str(payload["n"]),
            issued_at=_from_millis(int(payload["i"])),
            expires_at=_from_millis(int(payload["e"])),
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError, OverflowError):
        raise LinkRefused("tampered") from None
    if link.scope not in SCOPES:
        raise LinkRefused("tampered")
    if (now or timezone.now()) >= link.expires_at:
        raise LinkRefused("expired")
    return link


def revoked_until(owner_id: str) -> datetime | None:
    """The newest :func:`revoke_portal_links` of ``owner_id``: links issued until then open nothing."""
    return (
        AuditLogEntry.objects.filter(owner_id=owner_id, action=AuditAction.LINKS_REVOKED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )


def is_revoked(owner_id: str, issued_at: datetime) -> bool:
    cutoff = revoked_until(owner_id)
    return cutoff is not None and issued_at <= cutoff


def consume(token: str, now: datetime | None = None) -> PortalLink:
    """Use ``token`` once: checks it and records its use, or raises :class:`LinkRefused`.

    The use is the ``INSERT`` of the ``link.opened`` audit entry with the link's nonce (unique),
    so of two requests with one link exactly one gets in.
    """
    link = read_token(token, now)
    if get_owner(link.owner_id) is None:
        raise LinkRefused("revoked")
    if is_revoked(link.owner_id, link.issued_at):
        raise LinkRefused("revoked")
    try:
        with transaction.atomic():
            AuditLogEntry.objects.create(
                owner_id=link.owner_id,
                actor=link.actor,
                action=AuditAction.LINK_OPENED,
                link_nonce=link.nonce,
                changes={"scope": link.scope, "expires_at": link.expires_at.isoformat()},
            )
    except IntegrityError:
        raise LinkRefused("reused") from None
    return link


def revoke_portal_links(owner: Any, *, actor: str = "revoke_portal_links()") -> None:
    """End every portal link of ``owner`` issued until now, used or not, and the sessions they opened."""
    key = owner_key(owner)
    if key is None:
        raise ValueError("revoke_portal_links needs an owner.")
    AuditLogEntry.objects.create(owner_id=key, actor=actor[:255], action=AuditAction.LINKS_REVOKED)

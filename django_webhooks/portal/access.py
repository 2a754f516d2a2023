"""Who is looking at the portal, and which owner's objects they see.

Two ways in, one result (:class:`PortalAccess`): the host's login, mapped to an owner by the
same ``OWNER_RESOLVER`` as the API (:func:`~django_webhooks.api.permissions.request_owner_id`),
or a session opened by a signed link (:mod:`.links`), which wins while it lasts. Every portal
view is wrapped by :func:`portal_view`, which resolves the access once, refuses every POST of a
read-only session, applies the API's throttle rates (``API_THROTTLE_RATES``) per owner, and
marks the response private and frameable by this site only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _

from ..api.permissions import request_owner_id
from ..api.throttling import WebhooksRateThrottle
from .links import SCOPE_READ, PortalLink, is_revoked, link_actor

#: Where a link's session is kept in ``request.session``.
SESSION_KEY = "django_webhooks_portal"
#: How long a session opened by a link lasts (the link itself is short-lived, the visit is not).
LINK_SESSION_AGE = timedelta(hours=8)

PortalView = Callable[..., HttpResponse]


@dataclass(frozen=True)
class PortalAccess:
    """The owner a request acts for, and as whom."""

    owner_id: str
    read_only: bool
    #: How the audit log names who acts: the user, or the portal link for the owner.
    actor: str
    #: The host user's primary key; empty for a link session.
    user_id: str = ""
    via_link: bool = False


def open_link_session(request: HttpRequest, link: PortalLink) -> None:
    """Start a portal session for ``link``'s owner under a new session key."""
    request.session.cycle_key()
    request.session[SESSION_KEY] = {
        "owner": link.owner_id,
        "scope": link.scope,
        "issued_at": link.issued_at.isoformat(),
        "until": (timezone.now() + LINK_SESSION_AGE).isoformat(),
    }


def end_link_session(request: HttpRequest) -> None:
    request.session.pop(SESSION_KEY, None)


def _link_access(request: HttpRequest) -> PortalAccess | None:
    data = request.session.get(SESSION_KEY)
    if not isinstance(data, dict):
        return None
    try:
        owner_id = str(data["owner"])
        issued_at = datetime.fromisoformat(data["issued_at"])
        until = datetime.fromisoformat(data["until"])
    except (KeyError, TypeError, ValueError):
        end_link_session(request)
        return None
    if until <= timezone.now() or is_revoked(owner_id, issued_at):
        end_link_session(request)
        return None
    return PortalAccess(
        owner_id=owner_id, read_only=data.get("scope") == SCOPE_READ, actor=link_actor(owner_id), via_link=True
    )


def portal_access(request: HttpRequest) -> PortalAccess | None:
    """The access of ``request``: its link session, else its user's owner; None for neither."""
    access = _link_access(request)
    if access is not None:
        return access
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    # The resolver reads what a Django request has (user, session, headers); the API gives it DRF's.
    owner_id = request_owner_id(request)
    if owner_id is None:
        return None
    return PortalAccess(
        owner_id=owner_id, read_only=False, actor=f"{user.get_username()} (user #{user.pk})", user_id=str(user.pk)
    )


class PortalRateThrottle(WebhooksRateThrottle):
    """The API's rate of ``scope`` (``webhooks`` or ``webhooks_actions``), counted per owner for the portal."""

    def __init__(self, scope: str, access: PortalAccess) -> None:
        self.scope = scope
        self.access = access

    def get_cache_key(self, request: Any, view: Any) -> str:
        return self.cache_format % {"scope": f"django_webhooks_portal_{self.scope}", "ident": self.access.owner_id}


def _throttled(request: HttpRequest, access: PortalAccess, strict: bool) -> float | None:
    """Seconds to wait when a rate is exceeded, else None."""
    scopes = ["webhooks", "webhooks_actions"] if strict and request.method == "POST" else ["webhooks"]
    for scope in scopes:
        throttle = PortalRateThrottle(scope, access)
        if not throttle.allow_request(cast(Any, request), cast(Any, None)):
            return throttle.wait() or 1.0
    return None


def refusal(request: HttpRequest, status: int, title: str, message: str) -> HttpResponse:
    """A page that says why the portal said no, in the portal's layout."""
    response = render(
        request, "django_webhooks/portal/refused.html", {"title": title, "message": message}, status=status
    )
    return finish(response)


def finish(response: HttpResponse) -> HttpResponse:
    """Headers of every portal response: never cached, framed only by this site unless the host says otherwise."""
    add_never_cache_headers(response)
    if "X-Frame-Options" not in response.headers:
        response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def portal_view(*, strict: bool = False) -> Callable[[PortalView], PortalView]:
    """Wrap a portal view ``view(request, access, *args, **kwargs)``.

    ``strict`` puts its POSTs (they send requests or rewrite secrets) under the stricter
    ``webhooks_actions`` rate too, as the API's actions are.
    """

    def decorate(view: PortalView) -> PortalView:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            access = portal_access(request)
            if access is None:
                user = getattr(request, "user", None)
                if user is not None and user.is_authenticated:
                    return refusal(
                        request,
                        403,
                        _("No webhooks here"),
                        _("Your account is not linked to a webhook owner, so it has no webhook endpoints to manage."),
                    )
                return redirect_to_login(request.get_full_path())
            if request.method not in ("GET", "HEAD", "OPTIONS") and access.read_only:
                return refusal(
                    request,
                    403,
                    _("Read-only access"),
                    _(
                        "This portal session may look at everything but change nothing. Ask for a new link to make changes."
                    ),
                )
            wait = _throttled(request, access, strict)
            if wait is not None:
                response = refusal(
                    request, 429, _("Too many requests"), _("Please wait a moment before you try again.")
                )
                response.headers["Retry-After"] = str(int(wait) + 1)
                return response
            return finish(view(request, access, *args, **kwargs))

        return wrapper

    return decorate

"""Coming in with a signed link, and leaving the session it opened."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from .access import end_link_session, open_link_session, refusal
from .links import LinkRefused, consume

#: What each refused link says, and its status: gone for links that worked once, forbidden otherwise.
REFUSALS = {
    "expired": (410, _("This link has expired"), _("Portal links work for a short time only. Ask for a new one.")),
    "reused": (
        410,
        _("This link was already used"),
        _("Each portal link opens the portal once. Ask for a new one to come back."),
    ),
    "revoked": (403, _("This link was revoked"), _("It no longer opens the portal. Ask for a new one.")),
    "tampered": (403, _("This link is not valid"), _("It may be incomplete or changed. Ask for a new one.")),
}


@require_GET
def enter(request: HttpRequest, token: str) -> HttpResponse:
    """Use a signed link once: open a session for its owner under a new session key, then go to the portal."""
    try:
        link = consume(token)
    except LinkRefused as exc:
        status, title, message = REFUSALS[exc.reason]
        response = refusal(request, status, str(title), str(message))
    else:
        open_link_session(request, link)
        response = redirect("django_webhooks_portal:endpoints")
    # The token is in this URL: never send it on to another site.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@require_POST
def leave(request: HttpRequest) -> HttpResponse:
    """End the link's session (the host's login, if any, stays)."""
    end_link_session(request)
    return refusal(request, 200, str(_("You left the webhooks portal")), str(_("Open a new portal link to come back.")))

"""The metrics view: staff users (their session) or ``Authorization: Bearer <METRICS_TOKEN>``."""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ..conf import webhooks_settings
from .exposition import MetricsUnavailable, render

BEARER = "bearer "


def has_metrics_access(request: HttpRequest) -> bool:
    """An active staff user, or the configured ``METRICS_TOKEN`` as a bearer token (constant time).

    With no token configured only staff get in: an empty ``Authorization: Bearer`` never matches.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return True
    return token_matches(request.headers.get("Authorization", ""))


def token_matches(authorization: str) -> bool:
    """Whether an ``Authorization`` header carries ``METRICS_TOKEN`` (False when none is set)."""
    token = webhooks_settings.METRICS_TOKEN
    if not token or authorization[: len(BEARER)].lower() != BEARER:
        return False
    return hmac.compare_digest(authorization[len(BEARER) :].strip().encode(), token.encode())


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """The Prometheus exposition (text format, or OpenMetrics when the scraper asks for it)."""
    if not has_metrics_access(request):
        return HttpResponseForbidden("Staff or the metrics token only.", content_type="text/plain")
    try:
        body, content_type = render(request.headers.get("Accept"))
    except MetricsUnavailable as exc:
        return HttpResponse(str(exc), status=503, content_type="text/plain")
    return HttpResponse(body, content_type=content_type)

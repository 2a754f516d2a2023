"""Rate limits for the API, configured by the ``API_THROTTLE_RATES`` setting.

Two scopes: ``webhooks`` for every request and the stricter ``webhooks_actions`` for the
actions that send HTTP requests or rewrite secrets (test event, resend, recover, rotate).
A scope missing from the setting, or set to None, is not limited.
"""

from __future__ import annotations

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ..conf import webhooks_settings


class WebhooksRateThrottle(SimpleRateThrottle):
    """Limits each user (or client IP, before authentication) to the rate of :attr:`scope`.

    Subclass and set ``scope`` to add a scope; the rate is read from ``API_THROTTLE_RATES``
    on every request, so ``override_settings`` applies at once.
    """

    scope = "webhooks"

    def __init__(self) -> None:
        pass

    def get_rate(self) -> str | None:
        return (webhooks_settings.API_THROTTLE_RATES or {}).get(self.scope)

    def applies_to(self, view: APIView) -> bool:
        return True

    def allow_request(self, request: Request, view: APIView) -> bool:
        if not self.applies_to(view):
            return True
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": f"django_webhooks_{self.scope}", "ident": ident}


class WebhooksActionsRateThrottle(WebhooksRateThrottle):
    """The stricter scope, for the view actions named in the view's ``strict_throttle_actions``."""

    scope = "webhooks_actions"

    def applies_to(self, view: APIView) -> bool:
        return getattr(view, "action", None) in getattr(view, "strict_throttle_actions", ())

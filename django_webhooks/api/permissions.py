"""Who may use the API, and whose objects they see."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from ..conf import webhooks_settings
from ..owners import owner_key

#: Query parameter with which staff ask for every owner's objects (when the setting allows it).
ALL_OWNERS_PARAM = "all_owners"
TRUE_VALUES = {"1", "true", "yes", "on"}


def request_owner_id(request: Request | HttpRequest) -> str | None:
    """The ``owner_id`` the ``OWNER_RESOLVER`` setting gives for ``request``, or None."""
    return owner_key(webhooks_settings.OWNER_RESOLVER(request))


def sees_all_owners(request: Request) -> bool:
    """True for staff asking ``?all_owners=1`` when ``API_STAFF_SEES_ALL`` allows it."""
    if not webhooks_settings.API_STAFF_SEES_ALL:
        return False
    user = getattr(request, "user", None)
    if not (user is not None and user.is_authenticated and user.is_staff):
        return False
    return request.query_params.get(ALL_OWNERS_PARAM, "").lower() in TRUE_VALUES


@runtime_checkable
class OwnerScopedView(Protocol):
    """A view that resolves the requesting owner once per request, as ``WebhooksAPIView.owner_id`` does."""

    @property
    def owner_id(self) -> str | None: ...


class IsWebhookOwner(BasePermission):
    """Authenticated, and the owner resolver maps the request to an owner.

    Changes nothing: it reads the owner the view resolved (:class:`OwnerScopedView`; other views
    get ``OWNER_RESOLVER`` called here), and views scope every queryset to it. Unauthenticated
    requests get the authentication classes' 401/403; an authenticated user the resolver does
    not map to an owner gets a 403 that says so.
    """

    message = _("Not authenticated.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return False
        owner_id = view.owner_id if isinstance(view, OwnerScopedView) else request_owner_id(request)
        if owner_id is None:
            raise PermissionDenied(
                _("Your account is not linked to a webhook owner, so it has no webhook subscriptions to manage.")
            )
        return True

"""Actions on the delivery log: send a test event, recover failed deliveries, resend one delivery.

Each runs the operation the API's action runs (:mod:`django_webhooks.delivery.operations`) with
the API's serializer as validation, under the API's stricter ``webhooks_actions`` rate.
"""

from __future__ import annotations

from django.contrib import messages
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from ..delivery import operations
from ..models import AuditAction
from . import audit
from .access import PortalAccess, portal_view
from .deliveries import owned_delivery
from .endpoints import owned_subscription
from .forms import RecoverForm, TestEventForm, form_errors


@require_POST
@portal_view(strict=True)
def send_test_event(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    """Send the test event now and show its delivery, with the attempt and the endpoint's answer."""
    subscription = owned_subscription(access, pk)
    form = TestEventForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)
    data = form.validated_data
    attempt = operations.send_test_event(subscription, data["event_type"], data.get("data"))
    audit.record(
        access,
        AuditAction.TEST_EVENT_SENT,
        subscription,
        changes={"event_type": data["event_type"], "delivery": attempt.delivery_id, "status": attempt.response_status},
    )
    outcome = operations.describe_attempt(attempt)
    if attempt.succeeded:
        messages.success(request, _("Test event delivered: %(outcome)s.") % {"outcome": outcome})
    else:
        messages.error(
            request, _("The test event failed: %(error)s. It is retried like any delivery.") % {"error": outcome}
        )
    return redirect("django_webhooks_portal:delivery", pk=attempt.delivery_id)


@require_POST
@portal_view(strict=True)
def recover(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    subscription = owned_subscription(access, pk)
    form = RecoverForm(request.POST)
    if not form.is_valid():
        messages.error(request, form_errors(form))
        return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)
    since = form.validated_data["since"]
    with transaction.atomic():
        count = operations.recover(subscription, since)
        audit.record(
            access,
            AuditAction.DELIVERIES_RECOVERED,
            subscription,
            changes={"since": since.isoformat(), "recovered": count},
        )
    messages.success(request, _("Queued %(count)d failed deliveries again.") % {"count": count})
    return redirect("django_webhooks_portal:endpoint", pk=subscription.pk)


@require_POST
@portal_view(strict=True)
def resend(request: HttpRequest, access: PortalAccess, pk: int) -> HttpResponse:
    delivery = owned_delivery(access, pk)
    with transaction.atomic():
        operations.resend(delivery)
        audit.record(access, AuditAction.DELIVERY_RESENT, delivery, object_repr=delivery.message_id)
    messages.success(request, _("The delivery is queued to be sent again, with the same webhook-id."))
    return redirect("django_webhooks_portal:delivery", pk=delivery.pk)

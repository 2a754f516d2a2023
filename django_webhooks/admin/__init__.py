"""Django admin for django-webhooks: subscriptions, the event catalog, the delivery log and a dashboard.

Importing this package registers every admin with ``django.contrib.admin.site``.
"""

from __future__ import annotations

from .audit import AuditLogEntryAdmin
from .event_types import EventTypeAdmin
from .log import DeliveryAdmin, DeliveryAttemptAdmin, EventAdmin
from .subscriptions import SubscriptionAdmin

__all__ = [
    "AuditLogEntryAdmin",
    "DeliveryAdmin",
    "DeliveryAttemptAdmin",
    "EventAdmin",
    "EventTypeAdmin",
    "SubscriptionAdmin",
]

"""Alerts before an endpoint dies: one notice per threshold and incident, and one when it recovers.

An *incident* is a failure streak of one subscription: it begins with the first failed attempt
after a success (``Subscription.failing_since``) and ends with the next success, or when a person
enables the subscription again. ``Subscription.alert_level`` holds the strongest alert sent for the
current incident:

* ``0`` (:data:`LEVEL_NONE`): none yet;
* ``1`` (:data:`LEVEL_FAILING`): ``ALERT_FAILING_AFTER`` consecutive failed attempts;
* ``1 + p`` (:func:`budget_level`): ``p`` percent of ``AUTO_DISABLE_AFTER`` spent failing, for
  each ``p`` of ``ALERT_BUDGET_THRESHOLDS`` (integers from 1 to 99);
* ``101`` (:data:`LEVEL_DISABLED`): disabled, the 100 % step.

Storing the percentage rather than a position in the list keeps the meaning of a stored level when
the thresholds are changed. :mod:`~django_webhooks.delivery.health` calls :func:`escalate` after it
counted a failure; the level is raised by one conditional ``UPDATE ... WHERE alert_level < new``
tied to the incident (its ``failing_since``), so however many workers and processes record
failures at once, exactly one of them sends each alert. An alert that was overtaken before it was
sent (two thresholds crossed between two attempts) is skipped: only the strongest goes out. The
success that ends an incident resets the level with its own conditional ``UPDATE``; its count says
whether this process sends the "recovered" notice, which goes out only when an alert did.

Each notice is a Django signal (:data:`~django_webhooks.signals.endpoint_failing`,
:data:`~django_webhooks.signals.endpoint_recovered`,
:data:`~django_webhooks.signals.subscription_disabled`), an optional e-mail to the owner
(``NOTIFY_OWNER_ON_ALERT``; ``NOTIFY_OWNER_ON_DISABLE`` for disabling) sent once the transaction
commits, and, with ``OPERATIONAL_EVENTS``, an operational event (``webhook.endpoint.failing``,
``.recovered``, ``.disabled``: :data:`~django_webhooks.catalog.BUILTIN_EVENT_TYPES`) recorded in the
same transaction for the owner's other subscriptions that ask for it by name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.translation import gettext

from .. import signals
from ..capture.events import send_event
from ..catalog import ENDPOINT_DISABLED, ENDPOINT_FAILING, ENDPOINT_RECOVERED
from ..conf import webhooks_settings
from ..models import DeliveryAttempt, Subscription
from ..owners import get_owner
from .targets import loggable_url

logger = logging.getLogger("django_webhooks.delivery.alerts")

LEVEL_NONE = 0
LEVEL_FAILING = 1
LEVEL_DISABLED = 101


def budget_level(percent: int) -> int:
    """The ``alert_level`` of the alert sent at ``percent`` % of the failure budget."""
    return 1 + percent


# -- the failure budget ----------------------------------------------------------------------


def failure_budget() -> timedelta | None:
    """``AUTO_DISABLE_AFTER`` as a period: how long an endpoint may fail before it is disabled."""
    value = webhooks_settings.AUTO_DISABLE_AFTER
    return timedelta(seconds=float(value)) if value else None


def budget_percent(failing_since: datetime | None, now: datetime) -> int | None:
    """Whole percent of the failure budget spent failing since ``failing_since`` (at most 100)."""
    budget = failure_budget()
    if budget is None or failing_since is None:
        return None
    return min(100, max(0, int((now - failing_since) * 100 / budget)))


def describe_period(period: timedelta) -> str:
    """``period`` in words for reasons and logs: ``5 days``, ``90 minutes``, ``45 seconds``."""
    seconds = int(period.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def earned_level(subscription: Subscription, now: datetime) -> tuple[int, int | None]:
    """The strongest alert ``subscription``'s failure streak has earned, and its budget threshold.

    Reads the health fields of ``subscription`` as they are (the caller has just refreshed them).
    """
    level, threshold = LEVEL_NONE, None
    failing_after = webhooks_settings.ALERT_FAILING_AFTER
    if failing_after and subscription.consecutive_failures >= failing_after:
        level = LEVEL_FAILING
    budget = failure_budget()
    if budget is not None and subscription.failing_since is not None:
        spent = (now - subscription.failing_since) * 100
        crossed = [percent for percent in webhooks_settings.ALERT_BUDGET_THRESHOLDS if spent >= budget * percent]
        if crossed:
            threshold = max(crossed)
            level = max(level, budget_level(threshold))
    return level, threshold


# -- the three notices -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastAttempt:
    """What the newest attempt of a subscription got: its HTTP status and error class."""

    status: int | None
    error: str | None


def escalate(subscription: Subscription, now: datetime) -> bool:
    """Send the failing alert ``subscription``'s streak has earned unless it was sent; True if sent.

    Called by :mod:`~django_webhooks.delivery.health` after each failure it counts, with the
    health fields just read back. Only an enabled subscription in a failure streak alerts.
    """
    if not subscription.enabled or subscription.failing_since is None:
        return False
    level, threshold = earned_level(subscription, now)
    if level <= subscription.alert_level:
        return False
    raised = Subscription.objects.filter(
        pk=subscription.pk, enabled=True, failing_since=subscription.failing_since, alert_level__lt=level
    ).update(alert_level=level)
    if not raised:
        return False  # another worker sent it (or a stronger one), or the incident just ended
    subscription.alert_level = level
    failures = subscription.consecutive_failures
    if threshold is None:
        reason = f"{failures} consecutive attempts failed."
    else:
        allowed = describe_period(failure_budget() or timedelta(0))  # a threshold is crossed with a budget
        reason = (
            f"Failing for {threshold}% of the {allowed} allowed before it is disabled "
            f"({failures} consecutive failures since {_utc(subscription.failing_since)})."
        )
    logger.warning("Subscription %s (%s) is failing: %s", subscription.pk, loggable_url(subscription.url), reason)
    signals.endpoint_failing.send(
        sender=Subscription,
        subscription=subscription,
        percent=threshold,
        consecutive_failures=failures,
        failing_since=subscription.failing_since,
    )
    data = _data(
        subscription,
        now,
        reason=reason,
        failing_since=subscription.failing_since,
        consecutive_failures=failures,
        alert="failing" if threshold is None else "budget",
        threshold_percent=threshold,
    )
    _record_event(ENDPOINT_FAILING, subscription, data)
    if webhooks_settings.NOTIFY_OWNER_ON_ALERT:
        subject = gettext("Webhook endpoint failing: %(url)s")
        _email_on_commit(subscription, subject, "django_webhooks/email/endpoint_failing.txt", data)
    return True


def recovered(
    subscription: Subscription, *, failing_since: datetime | None, consecutive_failures: int, now: datetime
) -> None:
    """Announce that ``subscription``'s incident is over (health calls it once its reset counted)."""
    reason = f"An attempt succeeded after {consecutive_failures} consecutive failures."
    logger.info("Subscription %s (%s) recovered: %s", subscription.pk, loggable_url(subscription.url), reason)
    signals.endpoint_recovered.send(
        sender=Subscription,
        subscription=subscription,
        failing_since=failing_since,
        consecutive_failures=consecutive_failures,
        recovered_at=now,
    )
    data = _data(
        subscription,
        now,
        reason=reason,
        failing_since=failing_since,
        consecutive_failures=consecutive_failures,
        recovered_at=_iso(now),
        disable_at=None,
    )
    _record_event(ENDPOINT_RECOVERED, subscription, data)
    if webhooks_settings.NOTIFY_OWNER_ON_ALERT:
        subject = gettext("Webhook endpoint recovered: %(url)s")
        _email_on_commit(subscription, subject, "django_webhooks/email/endpoint_recovered.txt", data)


def disabled(subscription: Subscription, *, reason: str, cause: str, now: datetime) -> None:
    """Announce that ``subscription`` was disabled (health calls it once its ``UPDATE`` counted)."""
    signals.subscription_disabled.send(sender=Subscription, subscription=subscription, reason=reason, cause=cause)
    data = _data(
        subscription,
        now,
        reason=reason,
        failing_since=subscription.failing_since,
        consecutive_failures=subscription.consecutive_failures,
        cause=cause,
        disabled_at=_iso(now),
        disable_at=None,
    )
    _record_event(ENDPOINT_DISABLED, subscription, data)
    if webhooks_settings.NOTIFY_OWNER_ON_DISABLE:
        transaction.on_commit(lambda: notify_owner_of_disable(subscription, reason))


def notify_owner_of_disable(subscription: Subscription, reason: str) -> bool:
    """Email the subscription's owner that it was disabled; False when there is nobody to tell.

    The template ``django_webhooks/email/subscription_disabled.txt`` gets ``subscription`` and
    ``reason``.
    """
    subject = gettext("Webhook endpoint disabled: %(url)s") % {"url": subscription.url}
    context = {"subscription": subscription, "reason": reason}
    return email_owner(subscription, subject, "django_webhooks/email/subscription_disabled.txt", context)


def email_owner(subscription: Subscription, subject: str, template: str, context: dict[str, Any]) -> bool:
    """Email ``subscription``'s owner (its ``email`` attribute); False when there is nobody to tell.

    The one way the engine writes to an owner. Never raises: a mail server that refuses is logged.
    """
    owner = get_owner(subscription.owner_id)
    address = getattr(owner, "email", "") if owner is not None else ""
    if not address:
        return False
    try:
        send_mail(
            subject=subject,
            message=render_to_string(template, context),
            from_email=getattr(settings, "DEFAULT_FROM_EMAIL", None),
            recipient_list=[address],
        )
    except Exception:
        logger.exception("Could not email the owner of subscription %s (%s).", subscription.pk, template)
        return False
    return True


# -- what a notice carries -------------------------------------------------------------------


def _email_on_commit(subscription: Subscription, subject: str, template: str, data: dict[str, Any]) -> None:
    """Email the owner once the transaction commits, in the language active then."""

    def send() -> None:
        context = {**_email_context(data), "subscription": subscription}
        email_owner(subscription, subject % {"url": context["url"]}, template, context)

    transaction.on_commit(send)


def _email_context(data: dict[str, Any]) -> dict[str, Any]:
    """The operational event's data, its times as ``YYYY-MM-DD HH:MM UTC`` for the templates."""
    context = dict(data)
    for key in ("failing_since", "disable_at", "recovered_at", "disabled_at"):
        value = context.get(key)
        context[key] = _utc(datetime.fromisoformat(value)) if value else None
    return context


def _data(
    subscription: Subscription,
    now: datetime,
    *,
    reason: str,
    failing_since: datetime | None,
    consecutive_failures: int,
    **extra: Any,
) -> dict[str, Any]:
    """The ``data`` of an operational event (the catalog's schema for the three types)."""
    budget = failure_budget()
    last = _last_attempt(subscription)
    data = {
        "subscription_id": subscription.pk,
        "url": loggable_url(subscription.url),
        "failing_since": _iso(failing_since),
        "consecutive_failures": consecutive_failures,
        "budget_percent": budget_percent(failing_since, now),
        "disable_at": _iso(failing_since + budget) if budget is not None and failing_since is not None else None,
        "last_status": last.status,
        "last_error": last.error,
        "reason": reason,
    }
    data.update(extra)
    return data


def _last_attempt(subscription: Subscription) -> LastAttempt:
    newest = (
        DeliveryAttempt.objects.filter(subscription_id=subscription.pk)
        .order_by("-created_at", "-id")
        .values_list("response_status", "error_class")
        .first()
    )
    if newest is None:
        return LastAttempt(None, None)
    return LastAttempt(newest[0], newest[1] or None)


def _record_event(event_type: str, subscription: Subscription, data: dict[str, Any]) -> None:
    """Record the operational event for the owner's subscriptions (in a savepoint: never raises)."""
    if not webhooks_settings.OPERATIONAL_EVENTS:
        return
    try:
        with transaction.atomic():
            send_event(event_type, data, owner=subscription.owner_id)
    except Exception:
        logger.exception("Could not record the %s event of subscription %s.", event_type, subscription.pk)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"

"""Signals sent by the delivery engine. Connect receivers to react to outcomes."""

from __future__ import annotations

from django.dispatch import Signal

#: A delivery got a 2xx. Arguments: ``delivery``, ``attempt``.
delivery_succeeded = Signal()

#: An attempt failed and the delivery will be retried. Arguments: ``delivery``, ``attempt``,
#: ``next_attempt_at``.
delivery_failed = Signal()

#: A delivery will not be tried again: the retry schedule is spent or the receiver refused it
#: for good (a 4xx). Arguments: ``delivery``, ``attempt``.
delivery_exhausted = Signal()

#: A subscription was disabled, by the engine (410 Gone, failing too long) or by a person.
#: Arguments: ``subscription``, ``reason``, ``cause`` (``"auto"``: failing for ``AUTO_DISABLE_AFTER``;
#: ``"gone"``: the receiver or the retry policy refused the endpoint; ``"manual"``).
subscription_disabled = Signal()

#: A subscription's endpoint is failing (:mod:`django_webhooks.delivery.alerts`): sent once per
#: incident when it has failed ``ALERT_FAILING_AFTER`` times in a row, and once at each
#: ``ALERT_BUDGET_THRESHOLDS`` percentage of ``AUTO_DISABLE_AFTER`` it spends failing. Arguments:
#: ``subscription``, ``percent`` (the budget threshold crossed, None for the consecutive-failures
#: alert), ``consecutive_failures``, ``failing_since``.
endpoint_failing = Signal()

#: An attempt succeeded on an endpoint that had been reported failing; the incident is over.
#: Arguments: ``subscription``, ``failing_since`` (when the incident began),
#: ``consecutive_failures`` (the failures it counted), ``recovered_at``.
endpoint_recovered = Signal()

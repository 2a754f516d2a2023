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
#: Arguments: ``subscription``, ``reason``.
subscription_disabled = Signal()

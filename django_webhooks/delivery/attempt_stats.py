"""Hourly attempt statistics per subscription (:class:`~django_webhooks.models.AttemptStats`)."""

from __future__ import annotations

from ..models import DeliveryAttempt


def add(attempts: list[DeliveryAttempt]) -> None:
    """Count ``attempts`` into their subscription's hour (called in the transaction that stores them)."""

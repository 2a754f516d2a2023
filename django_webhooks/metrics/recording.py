"""Counting what the pipeline does, for Prometheus; every function is a no-op without prometheus_client.

The metrics are created on first use, in the process that records (a django-q2 worker, or the
web process sending a test event), never at import: importing this module costs nothing, and
without ``prometheus_client`` the first call finds out once and every later call returns at
the first line. Under django-q2 (forked workers) set ``PROMETHEUS_MULTIPROC_DIR`` before the
cluster starts: each process then writes its own file, which the metrics view merges (see
:mod:`django_webhooks.metrics.exposition`).

Labels are bounded on purpose (no subscription, owner or URL): event types outside the catalog
count as ``other``, unknown error classes too. Recording never raises: a metrics failure (a full
disk under the multiprocess directory) is logged and the delivery goes on.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import wraps
from typing import TYPE_CHECKING, ParamSpec

from ..catalog import known_event_types
from ..models import Delivery, DeliveryAttempt, ErrorClass
from ..stats import LATENCY_BOUNDS_MS
from . import fork_safety

if TYPE_CHECKING:
    from prometheus_client import Counter, Histogram

logger = logging.getLogger("django_webhooks.metrics")

P = ParamSpec("P")

#: The changes :func:`endpoint_state_changed` counts.
STATE_CHANGES = ("circuit_opened", "circuit_closed", "disabled", "enabled")
#: Attempt duration buckets (seconds): the stats tables' latency buckets, so both agree.
ATTEMPT_DURATION_BUCKETS = tuple(bound / 1000 for bound in LATENCY_BOUNDS_MS)
#: Event to first 2xx (seconds): from immediate delivery to the retry schedule's days.
DELIVERY_LATENCY_BUCKETS = (
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
    900,
    1800,
    3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    3 * 86400,
)
_ERROR_CLASSES = frozenset(ErrorClass.values) - {""}
_REASON_MAX_LENGTH = 32


@dataclass(frozen=True, slots=True)
class PipelineMetrics:
    """The metric objects, created once per process by :func:`pipeline_metrics`."""

    events: Counter
    attempts: Counter
    state_changes: Counter
    attempt_duration: Histogram
    delivery_latency: Histogram

    def all(self) -> tuple[Counter | Histogram, ...]:
        return (self.events, self.attempts, self.state_changes, self.attempt_duration, self.delivery_latency)


_metrics: PipelineMetrics | None = None
#: Whether this process tried to create them (once: without prometheus_client, never again).
_tried = False


def _create() -> PipelineMetrics | None:
    try:
        from prometheus_client import Counter, Histogram
    except ImportError:
        return None
    try:
        created = PipelineMetrics(
            events=Counter(
                "django_webhooks_events",
                "Events fanned out to their subscriptions, by type (types outside the catalog: other).",
                ["event_type"],
            ),
            attempts=Counter(
                "django_webhooks_attempts",
                "Delivery attempts recorded, by outcome (succeeded, failed), status class and error class.",
                ["outcome", "status_class", "error_class"],
            ),
            state_changes=Counter(
                "django_webhooks_endpoint_state_changes",
                "Endpoint state changes: circuit_opened, circuit_closed, disabled, enabled, by reason.",
                ["change", "reason"],
            ),
            attempt_duration=Histogram(
                "django_webhooks_attempt_duration_seconds",
                "Duration of one delivery attempt (the HTTP request), in seconds.",
                buckets=ATTEMPT_DURATION_BUCKETS,
            ),
            delivery_latency=Histogram(
                "django_webhooks_delivery_latency_seconds",
                "From an event's creation to the end of its delivery's successful attempt, in seconds.",
                buckets=DELIVERY_LATENCY_BUCKETS,
            ),
        )
    except Exception:
        # E.g. PROMETHEUS_MULTIPROC_DIR names a directory that does not exist (check E016).
        logger.exception("Prometheus metrics are off in this process: they could not be created.")
        return None
    fork_safety.protect(created.all())
    return created


#: Held while the first caller creates the metrics: lanes record from several sender threads at
#: once, and a second caller must neither skip its counts nor register the metrics twice.
_creating = threading.Lock()


def _new_creation_lock() -> None:
    global _creating
    _creating = threading.Lock()  # a fork during the creation must not leave the child's held


os.register_at_fork(after_in_child=_new_creation_lock)


def pipeline_metrics() -> PipelineMetrics | None:
    """This process's metrics, created on first call; None when prometheus_client is not usable."""
    global _metrics, _tried
    if not _tried:
        with _creating:
            if not _tried:
                _metrics = _create()
                _tried = True
    return _metrics


def _never_raises(function: Callable[P, None]) -> Callable[P, None]:
    @wraps(function)
    def recording(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            function(*args, **kwargs)
        except Exception:
            logger.exception("Could not record Prometheus metrics (%s).", function.__name__)

    return recording


def status_class(status: int | None) -> str:
    """``2xx`` ... ``5xx`` for an HTTP status, ``none`` without a response, ``other`` for the rest."""
    if status is None:
        return "none"
    return f"{status // 100}xx" if 100 <= status < 600 else "other"


def error_class_label(error_class: str) -> str:
    """The attempt's error class (``none`` when it had none); values outside :class:`ErrorClass`: ``other``."""
    if not error_class:
        return "none"
    return error_class if error_class in _ERROR_CLASSES else "other"


@_never_raises
def events_fanned_out(event_types: Iterable[str]) -> None:
    """Count events a worker fanned out, by type (call it once the fan-out committed)."""
    metrics = _metrics or pipeline_metrics()
    if not metrics:
        return
    counts = Tally(event_types)
    if not counts:
        return
    catalog = known_event_types()
    labelled: Tally[str] = Tally()
    for event_type, count in counts.items():
        labelled[event_type if event_type in catalog else "other"] += count
    for label, count in labelled.items():
        metrics.events.labels(label).inc(count)


_DELIVERY_FIELD = DeliveryAttempt._meta.get_field("delivery")
_EVENT_FIELD = Delivery._meta.get_field("event")


@_never_raises
def attempts_recorded(attempts: list[DeliveryAttempt]) -> None:
    """Count the attempts just stored (each with its ``delivery``, whose ``event`` is loaded).

    Never queries: the end-to-end latency of a success is observed from the event the lane
    loaded with its delivery (``created_at``), and skipped if it was not loaded. A delivery resent
    after it succeeded is measured again from its event's creation (an operator's resend is rare).
    """
    metrics = _metrics or pipeline_metrics()
    if not metrics:
        return
    tally: Tally[tuple[str, str, str]] = Tally()
    for attempt in attempts:
        outcome = "succeeded" if attempt.succeeded else "failed"
        tally[(outcome, status_class(attempt.response_status), error_class_label(attempt.error_class))] += 1
        if attempt.duration_ms is not None:
            metrics.attempt_duration.observe(attempt.duration_ms / 1000)
        if attempt.succeeded:
            latency = _delivery_latency(attempt)
            if latency is not None:
                metrics.delivery_latency.observe(latency)
    for labels, count in tally.items():
        metrics.attempts.labels(*labels).inc(count)


def _delivery_latency(attempt: DeliveryAttempt) -> float | None:
    if not _DELIVERY_FIELD.is_cached(attempt):
        return None
    delivery = attempt.delivery
    if not _EVENT_FIELD.is_cached(delivery):
        return None
    finished = attempt.created_at + timedelta(milliseconds=attempt.duration_ms or 0)
    return max((finished - delivery.event.created_at).total_seconds(), 0.0)


@_never_raises
def endpoint_state_changed(change: str, reason: str = "") -> None:
    """Count a change of an endpoint's state: ``circuit_opened``, ``circuit_closed``, ``disabled``, ``enabled``.

    ``reason`` is a short code (``auto``, ``gone``, ``manual``...), not a message: it is a label.
    """
    metrics = _metrics or pipeline_metrics()
    if not metrics:
        return
    if change not in STATE_CHANGES:
        raise ValueError(f"Unknown endpoint state change {change!r}; one of {', '.join(STATE_CHANGES)}.")
    metrics.state_changes.labels(change, (reason or "none")[:_REASON_MAX_LENGTH]).inc()

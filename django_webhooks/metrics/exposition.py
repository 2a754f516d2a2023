"""What a scrape returns: this process's registry, or every process's files, plus the queue gauges.

Without ``PROMETHEUS_MULTIPROC_DIR`` (one web process, ``runserver``) the default registry is
exposed as it is (our counters and whatever else the project registered). With it, the
counters and histograms are read from every process's file in that directory (web processes and
django-q2 workers on this machine), as prometheus_client's multiprocess mode requires, after the
files of dead processes were folded together (:mod:`.compaction`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from .collectors import QueueCollector


class MetricsUnavailable(Exception):
    """prometheus_client is not installed (the ``metrics`` extra)."""


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus_client when it is first imported)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ScrapeRegistry:
    """The collectors of one scrape, in the order they are exposed."""

    def __init__(self, collectors: Iterable[Any]) -> None:
        self.collectors = list(collectors)

    def collect(self) -> Iterable[Any]:
        for collector in self.collectors:
            yield from collector.collect()


def scrape_registry(*, queue_gauges: bool = True) -> ScrapeRegistry:
    """The registry a scrape reads (raises :class:`MetricsUnavailable` without prometheus_client)."""
    try:
        import prometheus_client
    except ImportError:
        raise MetricsUnavailable("prometheus_client is not installed: pip install 'django-webhooks[metrics]'.")
    from .compaction import ProcessFilesCollector

    path = multiprocess_dir()
    collectors: list[Any] = [ProcessFilesCollector(path) if path else prometheus_client.REGISTRY]
    if queue_gauges:
        collectors.append(QueueCollector())
    return ScrapeRegistry(collectors)


def render(accept: str | None, *, queue_gauges: bool = True) -> tuple[bytes, str]:
    """The exposition (body, content type) in the format ``accept`` asks for (text or OpenMetrics)."""
    registry = scrape_registry(queue_gauges=queue_gauges)
    from prometheus_client.exposition import choose_encoder

    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type

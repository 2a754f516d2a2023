"""The exposition in one process, and the docs and dashboard that name its metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from django_webhooks.metrics import recording
from django_webhooks.metrics.exposition import render
from django_webhooks.models import DeliveryAttempt
from tests.metrics.conftest import promtool_check

DOCS = Path(__file__).resolve().parents[2] / "docs"
NAME = re.compile(r"\bdjango_webhooks_[a-z_]+")
SUFFIXES = ("_bucket", "_count", "_sum")


def exposed_names() -> set[str]:
    recording.events_fanned_out(["order.created"])
    recording.attempts_recorded([DeliveryAttempt(response_status=200, duration_ms=5, succeeded=True)])
    recording.endpoint_state_changed("circuit_opened")
    body, _ = render(None)
    text = body.decode()
    promtool_check(text)
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE django_webhooks_")}


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name


@pytest.mark.django_db
def test_the_docs_and_the_dashboard_name_only_metrics_that_exist_and_document_all_of_them():
    exposed = {name for name in exposed_names() if not name.endswith("_created")}
    section = (DOCS / "monitoring.md").read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    table = set(re.findall(r"^\| `(django_webhooks_[a-z_]+)` \|", section, re.MULTILINE))
    assert table == exposed
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    used = {base_name(name) for name in NAME.findall(json.dumps(dashboard["panels"]))}
    assert used <= exposed
    assert {base_name(name) for name in NAME.findall(section)} <= exposed

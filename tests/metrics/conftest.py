"""Helpers for the metrics tests: read an exposition, find promtool."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families


def samples(exposition: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text exposition: ``{(name, sorted labels): value}``."""
    found = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def promtool_check(exposition: str) -> None:
    """``promtool check metrics`` on ``exposition``; fails the test with promtool's findings."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: apt-get install prometheus (Debian ships promtool in it).")
    done = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, f"promtool check metrics failed:\n{done.stdout}{done.stderr}"


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create(username="ops", is_staff=True)
    client.force_login(user)
    return client

"""The django-q2 dispatcher (django_webhooks/delivery/via_django_q.py): how many workers share the work."""

from __future__ import annotations

import os
import time

import pytest
from django.conf import settings
from django_q.conf import Conf

from django_webhooks.delivery import broker, via_django_q
from tests.qcluster import on_django_tasks

pytestmark = pytest.mark.skipif(on_django_tasks(), reason="django-q2 only")


@pytest.fixture(autouse=True)
def fresh_count(monkeypatch):
    monkeypatch.setattr(via_django_q, "_fleet", None)


def test_with_no_cluster_running_the_count_is_this_clusters_own(db):
    assert via_django_q.workers(broker.get_broker()) == int(Conf.WORKERS)


def test_a_broker_that_fails_counts_this_cluster_alone(monkeypatch):
    class Down:
        def get_stats(self, pattern):
            raise ConnectionError("broker down")

    assert via_django_q.workers(Down()) == int(Conf.WORKERS)


@pytest.mark.e2e
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="cluster statistics are shared through Redis")
def test_workers_of_every_running_cluster_count(qcluster):
    qcluster()
    qcluster()
    each = int(settings.Q_CLUSTER["workers"])
    deadline = time.monotonic() + 30
    while via_django_q._running_workers(broker.get_broker()) < 2 * each and time.monotonic() < deadline:
        time.sleep(0.2)
    assert via_django_q._running_workers(broker.get_broker()) == 2 * each
    assert broker.workers() == 2 * each
    # More due work than one machine's workers asks for helpers for both machines.
    assert broker.helpers_for(10**6) == 2 * each

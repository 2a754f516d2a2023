"""Settings for benchmark processes: the example shop, tuned by environment variables.

BENCH_DESIGN=ours (default) uses django-webhooks; BENCH_DESIGN=naive replaces it with one
django-q2 task per saved order (the obvious design), on django-q2's default result saving.
DATABASE_URL / REDIS_URL select PostgreSQL + Redis; otherwise SQLITE_PATH + the ORM broker.
BENCH_WORKERS sets the cluster's workers, BENCH_WEBHOOKS (JSON) overrides DJANGO_WEBHOOKS keys and
BENCH_STATEMENTS_DIR counts SQL statements (bench/statements.py).
"""

from __future__ import annotations

import json
import os

from example_project.settings import *  # noqa: F403
from example_project.settings import DJANGO_WEBHOOKS, INSTALLED_APPS, Q_CLUSTER

DEBUG = False
LOGGING = {"version": 1, "disable_existing_loggers": False}
Q_CLUSTER = {**Q_CLUSTER, "workers": int(os.environ.get("BENCH_WORKERS", "2")), "name": "bench"}
DJANGO_WEBHOOKS = {
    **DJANGO_WEBHOOKS,
    "ALLOW_LOOPBACK": True,
    "REQUIRE_HTTPS": False,
    **json.loads(os.environ.get("BENCH_WEBHOOKS", "{}")),
}

if os.environ.get("BENCH_STATEMENTS_DIR"):  # bench.db_cost counts the statements sent
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.statements.StatementsConfig"]

if os.environ.get("BENCH_DESIGN") == "naive":
    INSTALLED_APPS = [*INSTALLED_APPS, "bench.naive.NaiveConfig"]
    DJANGO_WEBHOOKS = {**DJANGO_WEBHOOKS, "BINDINGS": []}
    # django-q2's defaults, as a user of the obvious design would run it.
    for key in ("save_limit", "max_attempts", "ack_failures", "poll"):
        Q_CLUSTER.pop(key, None)

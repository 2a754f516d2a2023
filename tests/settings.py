"""Test settings: the example project, with loopback targets allowed for the local receivers.

DATABASE_URL / REDIS_URL select PostgreSQL and the Redis broker (the second CI leg).
"""

from __future__ import annotations

import json
import os
import tempfile

import django

from example_project.settings import *  # noqa: F403
from example_project.settings import DATABASES, DJANGO_WEBHOOKS, Q_CLUSTER

DEBUG = False
SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
if django.VERSION >= (6, 1):  # EMAIL_BACKEND is deprecated in favour of MAILERS
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

# A file-backed SQLite test database, so a qcluster subprocess can share it with the tests.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = os.environ.get(
        "SQLITE_PATH", os.path.join(tempfile.gettempdir(), f"dwh-tests-{os.getpid()}.sqlite3")
    )
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"] + ".test"}
elif os.environ.get("TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DB_NAME"]}

DJANGO_WEBHOOKS = {**DJANGO_WEBHOOKS, "ALLOW_LOOPBACK": True, "REQUIRE_HTTPS": False}

# A qcluster subprocess started by the end-to-end tests gets short retries, leases and timeouts
# through these JSON-encoded environment variables.
DJANGO_WEBHOOKS.update(json.loads(os.environ.get("DWH_TEST_OVERRIDES") or "{}"))
Q_CLUSTER = {**Q_CLUSTER, **json.loads(os.environ.get("DWH_TEST_Q_CLUSTER") or "{}")}

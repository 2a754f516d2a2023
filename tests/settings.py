"""Test settings: the suite's own project (tests/urls.py, the ``testapp`` models of tests/models.py).

SQLite and django-q2's ORM broker unless DATABASE_URL / REDIS_URL are set (the second CI leg:
PostgreSQL and the Redis broker). Loopback targets are allowed for the local receivers.

DWH_DISPATCHER=django_tasks runs everything on Django Tasks instead: django-tasks-db's backend
(``manage.py db_worker``), and no django_q in INSTALLED_APPS, as a project on Tasks would have it.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import django

SECRET_KEY = "tests-secret-key-not-for-production-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_webhooks",
    "tests.apps.TestAppConfig",
    "rest_framework.authtoken",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # WAL lets the tests, a qcluster subprocess and its workers read while one writes.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }
# A file-backed SQLite test database, so a qcluster subprocess can share it with the tests.
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = os.environ.get(
        "SQLITE_PATH", os.path.join(tempfile.gettempdir(), f"dwh-tests-{os.getpid()}.sqlite3")
    )
    DATABASES["default"]["TEST"] = {"NAME": DATABASES["default"]["NAME"] + ".test"}
elif os.environ.get("TEST_DB_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DB_NAME"]}

AUTH_PASSWORD_VALIDATORS: list[dict] = []
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if django.VERSION >= (6, 1):  # EMAIL_BACKEND is deprecated in favour of MAILERS
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

DISPATCHER = os.environ.get("DWH_DISPATCHER") or "django_q"
if DISPATCHER == "django_tasks":
    INSTALLED_APPS.remove("django_q")
    # Django 6 ships django.tasks; Django 5.2 needs the django_tasks backport.
    INSTALLED_APPS[INSTALLED_APPS.index("django_webhooks") : 0] = (
        ["django_tasks_db"] if django.VERSION >= (6, 0) else ["django_tasks", "django_tasks_db"]
    )
    TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "webhooks-survivor"]},
        **json.loads(os.environ.get("DWH_TEST_TASKS") or "{}"),
    }

REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "webhooks",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    # A task gets `timeout` seconds; the broker hands it out again after `retry`, so retry > timeout.
    "timeout": 90,
    "retry": 120,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "catch_up": False,
    "poll": 0.1,
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Webhooks API",
    "DESCRIPTION": "Manage your webhook subscriptions, secrets and delivery log.",
    "VERSION": "1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # OpenAPI 3.1, for the event catalog as webhooks (docs/api.md).
    "OAS_VERSION": "3.1.0",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "django_webhooks.api.webhooks_schema.add_catalog_webhooks",
    ],
}

DJANGO_WEBHOOKS = {
    "EVENT_TYPES": {
        "order.created": {
            "description": "An order was placed.",
            "example": {"id": 1, "number": "A-1001", "total": "25.00", "status": "new"},
        },
        "order.updated": {
            "description": "An order changed (status, total...).",
            "example": {"id": 1, "number": "A-1001", "total": "25.00", "status": "paid"},
        },
        "order.deleted": {"description": "An order was deleted.", "example": {"id": 1, "number": "A-1001"}},
    },
    "BINDINGS": [
        {"model": "testapp.Order", "on": ["create"], "event_type": "order.created", "owner": "customer.user"},
        {"model": "testapp.Order", "on": ["update"], "event_type": "order.updated", "owner": "customer.user"},
        {"model": "testapp.Order", "on": ["delete"], "event_type": "order.deleted", "owner": "customer.user"},
    ],
    # The tests' receivers listen on loopback addresses, over plain HTTP.
    "ALLOW_LOOPBACK": True,
    "REQUIRE_HTTPS": False,
    "DISPATCHER": DISPATCHER,
}

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_webhooks": {"handlers": ["console"], "level": os.environ.get("WEBHOOKS_LOG_LEVEL", "INFO")}},
}

if DISPATCHER == "django_tasks":  # a db_worker's "Task ... state=RUNNING" lines (Django's own config hides them)
    LOGGING["loggers"]["django.tasks" if django.VERSION >= (6, 0) else "django_tasks"] = {
        "handlers": ["console"],
        "level": "INFO",
        "propagate": False,
    }

# A qcluster subprocess started by the end-to-end tests gets short retries, leases and timeouts
# through these JSON-encoded environment variables.
DJANGO_WEBHOOKS.update(json.loads(os.environ.get("DWH_TEST_OVERRIDES") or "{}"))
Q_CLUSTER = {**Q_CLUSTER, **json.loads(os.environ.get("DWH_TEST_Q_CLUSTER") or "{}")}

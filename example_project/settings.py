"""Settings of the example shop. SQLite + django-q2's ORM broker unless DATABASE_URL/REDIS_URL are set."""

from __future__ import annotations

import os
from pathlib import Path

import django

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-example-shop-only-for-local-demos")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
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
    "example_project.shop",
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

ROOT_URLCONF = "example_project.urls"
# The shop's customer pages (and the webhooks portal) send visitors to DRF's log-in page.
LOGIN_URL = "rest_framework:login"
WSGI_APPLICATION = "example_project.wsgi.application"

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
            "NAME": os.environ.get("SQLITE_PATH", str(BASE_DIR / "db.sqlite3")),
            # WAL lets the web process and the workers read while one writes.
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20},
        }
    }

AUTH_PASSWORD_VALIDATORS = []
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "example_project" / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if django.VERSION >= (6, 1):  # EMAIL_BACKEND is deprecated in favour of MAILERS
    MAILERS = {"default": {"BACKEND": "django.core.mail.backends.console.EmailBackend"}}
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

REDIS_URL = os.environ.get("REDIS_URL", "")
Q_CLUSTER = {
    "name": "webhooks",
    "workers": int(os.environ.get("Q_WORKERS", "2")),
    # A task gets `timeout` seconds; the broker hands it out again after `retry`, so retry > timeout.
    "timeout": 90,
    "retry": 120,
    "max_attempts": 1,
    "ack_failures": True,
    # Our tasks return nothing worth keeping; saving results is the main cost of django-q2.
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
INSTALLED_APPS.append("rest_framework.authtoken")

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
        {"model": "shop.Order", "on": ["create"], "event_type": "order.created", "owner": "customer.user"},
        {"model": "shop.Order", "on": ["update"], "event_type": "order.updated", "owner": "customer.user"},
        {"model": "shop.Order", "on": ["delete"], "event_type": "order.deleted", "owner": "customer.user"},
    ],
    # The demo's receiver runs on this machine; never allow loopback in a real deployment.
    "ALLOW_LOOPBACK": True,
    "REQUIRE_HTTPS": False,
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_webhooks": {"handlers": ["console"], "level": os.environ.get("WEBHOOKS_LOG_LEVEL", "INFO")}},
}

"""Settings of the test authorization server (:mod:`tests.oauth_server`)."""

from __future__ import annotations

import os

SECRET_KEY = "oauth-test-server-not-for-production-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "oauth2_provider",
]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "tests.oauth_server.urls"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("OAUTH_SERVER_DB", ":memory:"),
        "OPTIONS": {"timeout": 20},
    }
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OAUTH2_PROVIDER = {
    "ACCESS_TOKEN_EXPIRE_SECONDS": int(os.environ.get("OAUTH_TOKEN_SECONDS", "3600")),
    "SCOPES": {"webhooks": "Receive webhooks", "other": "Something else"},
    "DEFAULT_SCOPES": ["webhooks"],
    "OAUTH2_VALIDATOR_CLASS": "tests.oauth_server.views.AssertionValidator",
}

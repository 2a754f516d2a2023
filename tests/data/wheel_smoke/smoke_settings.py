"""Settings of the smallest project that installs django-webhooks from its wheel (tests/test_packaging.py)."""

import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "wheel-smoke-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_q",
    "django_webhooks",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
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
ROOT_URLCONF = "smoke_urls"
STATIC_URL = "static/"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.path.join(BASE_DIR, "smoke.sqlite3")}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
Q_CLUSTER = {"name": "smoke", "orm": "default", "workers": 1, "timeout": 30, "retry": 60, "save_limit": -1}
DJANGO_WEBHOOKS = {
    "EVENT_TYPES": {"ping": {"description": "A smoke test event."}},
    # The smoke receiver listens on loopback; never allow it in a real deployment.
    "ALLOW_LOOPBACK": True,
    "REQUIRE_HTTPS": False,
}

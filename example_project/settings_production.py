"""Production-style settings, checked in CI with `manage.py check --deploy`."""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import DJANGO_WEBHOOKS

DEBUG = False
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "ci-only-" + "x7Qp2vN9sL4kW8rT1yB6mZ3cF5hJ0dG" * 2)
ALLOWED_HOSTS = ["shop.example.com"]
SECURE_SSL_REDIRECT = True
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
DJANGO_WEBHOOKS = {**DJANGO_WEBHOOKS, "ALLOW_LOOPBACK": False, "REQUIRE_HTTPS": True}

"""Every error django-webhooks raises derives from WebhooksError; configuration errors stay ImproperlyConfigured."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

import django_webhooks
from django_webhooks.capture.bindings import BindingRegistry
from django_webhooks.conf import webhooks_settings
from django_webhooks.exceptions import WebhooksConfigurationError, WebhooksError

PACKAGE = Path(django_webhooks.__file__).parent


def test_no_module_raises_a_bare_improperly_configured():
    offenders = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in PACKAGE.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"raise ImproperlyConfigured\b", line)
    ]
    assert offenders == []


def test_the_configuration_error_is_both():
    assert issubclass(WebhooksConfigurationError, WebhooksError)
    assert issubclass(WebhooksConfigurationError, ImproperlyConfigured)


def test_a_bad_setting_raises_it():
    with override_settings(DJANGO_WEBHOOKS=["not", "a", "dict"]), pytest.raises(WebhooksConfigurationError):
        webhooks_settings.RETENTION_DAYS
    with (
        override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, "RETENTION_DAYZ": 1}),
        pytest.raises(ImproperlyConfigured, match="RETENTION_DAYZ"),  # what callers catch keeps matching
    ):
        webhooks_settings.RETENTION_DAYS


def test_a_bad_binding_raises_it():
    with pytest.raises(WebhooksConfigurationError, match="'event_type' must be a non-empty string"):
        BindingRegistry().build(model="auth.User", on="create", event_type="")

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_webhooks.conf import DEFAULTS, webhooks_settings
from django_webhooks.owners import request_user

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_apply_when_unset():
    with override_settings(DJANGO_WEBHOOKS={}):
        assert webhooks_settings.RETENTION_DAYS == 30
        assert webhooks_settings.RETRY_SCHEDULE == [5, 300, 1800, 7200, 18000, 36000, 36000]
        assert webhooks_settings.MAX_RESPONSE_BYTES == 20 * 1024
    with override_settings(DJANGO_WEBHOOKS=None):
        assert webhooks_settings.TIMEOUT == 15.0


def test_settings_are_read_lazily():
    with override_settings(DJANGO_WEBHOOKS={"RETENTION_DAYS": 7}):
        assert webhooks_settings.RETENTION_DAYS == 7
        with override_settings(DJANGO_WEBHOOKS={"RETENTION_DAYS": 90}):
            assert webhooks_settings.RETENTION_DAYS == 90
        assert webhooks_settings.RETENTION_DAYS == 7


def test_unknown_key_raises_and_names_the_key():
    with (
        override_settings(DJANGO_WEBHOOKS={"RETENTION_DAYZ": 7}),
        pytest.raises(ImproperlyConfigured, match="RETENTION_DAYZ"),
    ):
        webhooks_settings.RETENTION_DAYS


def test_not_a_dict_raises():
    with (
        override_settings(DJANGO_WEBHOOKS=[("RETENTION_DAYS", 7)]),
        pytest.raises(ImproperlyConfigured, match="must be a dict"),
    ):
        webhooks_settings.RETENTION_DAYS


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError):
        webhooks_settings.NO_SUCH_SETTING  # noqa: B018


def test_dotted_paths_are_imported():
    with override_settings(DJANGO_WEBHOOKS={}):
        assert webhooks_settings.OWNER_RESOLVER is request_user
        assert webhooks_settings.RESOLVER is socket.getaddrinfo


def test_dotted_path_import_error_names_the_setting():
    with (
        override_settings(DJANGO_WEBHOOKS={"RETRY_POLICY": "django_webhooks.retry.NoSuchPolicy"}),
        pytest.raises(ImproperlyConfigured, match=r"RETRY_POLICY.*NoSuchPolicy"),
    ):
        webhooks_settings.RETRY_POLICY


def test_owner_model_label_defaults_to_the_user_model():
    with override_settings(DJANGO_WEBHOOKS={}, AUTH_USER_MODEL="auth.User"):
        assert webhooks_settings.owner_model_label == "auth.User"
    with override_settings(DJANGO_WEBHOOKS={"OWNER_MODEL": "testapp.Customer"}):
        assert webhooks_settings.owner_model_label == "testapp.Customer"


def test_require_https_follows_debug_unless_set():
    with override_settings(DJANGO_WEBHOOKS={}, DEBUG=False):
        assert webhooks_settings.require_https is True
    with override_settings(DJANGO_WEBHOOKS={}, DEBUG=True):
        assert webhooks_settings.require_https is False
    with override_settings(DJANGO_WEBHOOKS={"REQUIRE_HTTPS": True}, DEBUG=True):
        assert webhooks_settings.require_https is True


def test_readme_documents_every_setting():
    headings = set(re.findall(r"^#{2,4} `?([A-Z_]+)`?\s*$", README.read_text(encoding="utf-8"), re.MULTILINE))
    missing = sorted(set(DEFAULTS) - headings)
    assert not missing, f"README.md has no heading for: {', '.join(missing)}"

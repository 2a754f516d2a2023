"""System checks, ids ``django_webhooks.E0xx`` (errors) and ``W0xx`` (warnings)."""

from __future__ import annotations

from django.core.checks import Error, register

from .conf import DEFAULTS, SETTING_NAME, webhooks_settings


@register()
def check_settings_keys(app_configs, **kwargs):
    try:
        unknown = webhooks_settings.unknown_keys()
    except Exception as exc:  # not a dict
        return [Error(str(exc), hint=f"Set {SETTING_NAME} to a dict.", id="django_webhooks.E001")]
    if unknown:
        return [
            Error(
                f"Unknown key(s) in {SETTING_NAME}: {', '.join(unknown)}.",
                hint=f"Remove or correct them; valid keys are {', '.join(sorted(DEFAULTS))}.",
                id="django_webhooks.E001",
            )
        ]
    return []

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoWebhooksConfig(AppConfig):
    name = "django_webhooks"
    verbose_name = _("Webhooks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .bindings import registry
        from .schedules import on_post_migrate

        registry.load_from_settings()
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="django_webhooks.schedules")

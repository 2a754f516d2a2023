from __future__ import annotations

import logging

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured
from django.db.models.signals import post_migrate, post_save, pre_save
from django.utils.translation import gettext_lazy as _

logger = logging.getLogger("django_webhooks")


class DjangoWebhooksConfig(AppConfig):
    name = "django_webhooks"
    verbose_name = _("Webhooks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here: these modules load the models, which cannot be imported before the app
        # registry is ready (this module is imported while it is being populated).
        from . import checks  # noqa: F401  (registers the system checks)
        from .capture.bindings import registry
        from .delivery.handshake import note_url_change, schedule_after_save
        from .delivery.schedules import on_post_migrate
        from .secret_store import create_first_secret

        try:
            registry.load_from_settings()
        except ImproperlyConfigured as exc:
            # Reported by `manage.py check` (E001, E011) with a hint, rather than as a traceback here.
            logger.error("django-webhooks bindings are not loaded, so bound models record no events: %s", exc)
        post_migrate.connect(on_post_migrate, sender=self, dispatch_uid="django_webhooks.delivery.schedules")
        post_save.connect(
            create_first_secret,
            sender=self.get_model("Subscription"),
            dispatch_uid="django_webhooks.secret_store.create_first_secret",
        )
        subscription = self.get_model("Subscription")
        pre_save.connect(note_url_change, sender=subscription, dispatch_uid="django_webhooks.handshake.pre_save")
        post_save.connect(schedule_after_save, sender=subscription, dispatch_uid="django_webhooks.handshake.post_save")

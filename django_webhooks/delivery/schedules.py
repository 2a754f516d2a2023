"""The django-q2 ``Schedule`` rows our periodic tasks need, created after ``migrate``.

Connected to ``post_migrate`` in :meth:`DjangoWebhooksConfig.ready`; nothing here runs at import.
Only for the django-q2 dispatcher: on Django Tasks, ``manage.py webhooks_scheduler`` (or cron
running ``webhooks_sweep`` and ``webhooks_prune``) runs the same jobs, see docs/operations.md.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.db import DatabaseError

from ..conf import webhooks_settings

#: name -> (task path, schedule type, minutes for MINUTES schedules)
SCHEDULES = {
    "django_webhooks.sweep": ("django_webhooks.tasks.sweep", "I", 1),
    "django_webhooks.prune": ("django_webhooks.tasks.prune", "D", None),
}


def ensure_schedules(using: str = "default", **kwargs: Any) -> list[str]:
    """Create the sweep (every minute) and prune (daily) schedules if missing; return those created."""
    # Not at the top: importing django-q2's models needs "django_q" in INSTALLED_APPS, and this
    # module is loaded (by the app config) whether it is or not (check W008).
    from django_q.models import Schedule

    created: list[str] = []
    for name, (func, schedule_type, minutes) in SCHEDULES.items():
        defaults: dict[str, Any] = {"func": func, "schedule_type": schedule_type, "repeats": -1}
        if minutes:
            defaults["minutes"] = minutes
        if webhooks_settings.QUEUE:
            defaults["cluster"] = webhooks_settings.QUEUE
        try:
            _, was_created = Schedule.objects.using(using).get_or_create(name=name, defaults=defaults)
        except DatabaseError:
            return created
        if was_created:
            created.append(name)
    return created


def on_post_migrate(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """``post_migrate`` receiver for our app config (connected with ``sender``)."""
    if webhooks_settings.DISPATCHER == "django_q" and apps.is_installed("django_q"):
        ensure_schedules(using=using)

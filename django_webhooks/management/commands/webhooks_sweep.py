from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from django_webhooks.tasks import sweep


class Command(BaseCommand):
    help = (
        "Catch up on webhook work: fan out events that were never fanned out, return deliveries "
        "whose worker died (expired lease) to pending, and enqueue delivery tasks for what is due "
        "and a handshake task for due endpoint verifications. "
        "The django-q2 schedule 'django_webhooks.sweep' does the same every minute; run this from "
        "cron or by hand when no schedule runs. Safe to run on several machines at once."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--loop",
            type=float,
            metavar="SECONDS",
            default=None,
            help="Keep sweeping every SECONDS seconds until interrupted (default: sweep once).",
        )

    def handle(self, *args: Any, loop: float | None = None, **options: Any) -> None:
        while True:
            result = sweep()
            self.stdout.write(
                f"Fanned out {result['fanned_out']} event(s), released {result['released']} expired "
                f"lease(s), {result['due']} delivery(ies) due, enqueued {result['enqueued']} delivery task(s), "
                f"{result['handshakes']} endpoint handshake(s) due."
            )
            if not loop:
                return
            try:
                time.sleep(max(loop, 1.0))
            except KeyboardInterrupt:
                return

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_webhooks.conf import webhooks_settings
from django_webhooks.delivery.retention import STATS_RETENTION_DAYS, prune


class Command(BaseCommand):
    help = (
        "Delete webhook history older than DJANGO_WEBHOOKS['RETENTION_DAYS'] (default 30): delivery "
        "attempts, and events whose deliveries are all finished (succeeded, failed, exhausted or "
        "cancelled) together with those deliveries, and hourly attempt statistics older than "
        f"{STATS_RETENTION_DAYS} days. Events with a pending or in-flight delivery are "
        "never deleted. Works in batches of short transactions; the django-q2 schedule "
        "'django_webhooks.prune' runs the same daily."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days of history (default: the RETENTION_DAYS setting).",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="Rows per delete transaction (default: the PRUNE_BATCH_SIZE setting).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Count what would be deleted, delete nothing.",
        )

    def handle(self, *args: Any, days: int | None, batch_size: int | None, dry_run: bool, **options: Any) -> None:
        if days is not None and days < 0:
            raise CommandError("--days may not be negative.")
        if batch_size is not None and batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        keep = webhooks_settings.RETENTION_DAYS if days is None else days
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{'Counting' if dry_run else 'Pruning'} webhook history older than {keep} day(s)...")

        def progress(kind: str, in_batch: int, so_far: int) -> None:
            if options["verbosity"] >= 1:
                self.stdout.write(f"  {verb.lower()} {in_batch} {kind} ({so_far} so far)")

        totals = prune(older_than_days=keep, batch_size=batch_size, progress=progress, dry_run=dry_run)
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {totals['events']} event(s), {totals['deliveries']} delivery(ies), "
                f"{totals['attempts']} attempt(s) and {totals['stats']} hourly statistics row(s) in "
                f"{totals['batches']} batch(es)."
            )
        )

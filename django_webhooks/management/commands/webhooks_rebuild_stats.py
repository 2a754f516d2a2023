from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from django_webhooks.delivery.attempt_stats import Rebuilt, rebuild_subscription
from django_webhooks.models import Subscription
from django_webhooks.stats import bucket_start


def _moment(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise CommandError(f"{value!r} is not a date and time (e.g. 2026-11-28T14:00:00Z).")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, timezone.get_current_timezone())


class Command(BaseCommand):
    help = (
        "Rebuild the hourly per-subscription statistics (the dashboard, the subscription charts and "
        "the stats API) from the delivery attempts still stored: for projects that had attempts "
        "before upgrading. Each subscription's hours are recounted from its attempts; an hour whose "
        "row already counts more attempts (its older attempts were pruned since) is kept as it is, "
        "so running it again changes nothing. Hours from the start of the previous hour on are left "
        "to the workers, which may still be recording them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            type=_moment,
            default=None,
            help="Only attempts from this time on (ISO 8601; default: every attempt stored).",
        )
        parser.add_argument(
            "--until",
            type=_moment,
            default=None,
            help="Only the hours before this one (rounded down to the hour; default: the start of the previous hour).",
        )
        parser.add_argument(
            "--subscription",
            type=int,
            action="append",
            default=None,
            help="Only this subscription id (repeat for several; default: every subscription).",
        )

    def handle(
        self,
        *args: Any,
        since: datetime | None,
        until: datetime | None,
        subscription: list[int] | None,
        **options: Any,
    ) -> None:
        until = bucket_start(until) if until is not None else bucket_start(timezone.now()) - timedelta(hours=1)
        if since is not None and since >= until:
            raise CommandError("--since must be before --until.")
        subscriptions = Subscription.objects.order_by("pk")
        if subscription:
            subscriptions = subscriptions.filter(pk__in=subscription)
            missing = set(subscription) - set(subscriptions.values_list("pk", flat=True))
            if missing:
                raise CommandError(f"No subscription with id {', '.join(map(str, sorted(missing)))}.")
        total = subscriptions.count()
        verbosity = options["verbosity"]
        if verbosity >= 1:
            self.stdout.write(
                f"Rebuilding the hourly statistics of {total} subscription(s) before {until:%Y-%m-%d %H:00} UTC..."
            )
        done = Rebuilt(0, 0, 0)
        for n, pk in enumerate(subscriptions.values_list("pk", flat=True).iterator(), start=1):
            result = rebuild_subscription(pk, until=until, since=since)
            done = Rebuilt(*(a + b for a, b in zip(done, result, strict=True)))
            if verbosity >= 2 or (verbosity >= 1 and result.attempts):
                self.stdout.write(
                    f"  [{n}/{total}] subscription #{pk}: {result.attempts} attempt(s), "
                    f"{result.written} hour(s) written, {result.kept} kept"
                )
        if verbosity >= 1:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Read {done.attempts} attempt(s): {done.written} hour(s) written, {done.kept} kept as they were."
                )
            )

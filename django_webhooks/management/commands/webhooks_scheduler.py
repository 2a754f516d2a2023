from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections


class Command(BaseCommand):
    help = (
        "Run the periodic webhook jobs without django-q2: webhooks_sweep every minute (fan out "
        "forgotten events, free expired leases, enqueue delivery tasks for what is due) and "
        "webhooks_prune once a day (delete history older than RETENTION_DAYS), both at start. "
        "For the Django Tasks dispatcher, next to your workers (e.g. `manage.py db_worker`); "
        "django-q2 has Schedule rows for the same. Stops after the job in progress on SIGTERM or "
        "Ctrl-C. One per deployment is enough; several are safe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--sweep-every",
            type=float,
            default=60.0,
            metavar="SECONDS",
            help="Seconds between sweeps (default: 60).",
        )
        parser.add_argument(
            "--prune-every",
            type=float,
            default=24 * 3600.0,
            metavar="SECONDS",
            help="Seconds between prunes (default: 86400, daily).",
        )
        parser.add_argument(
            "--once",
            action="store_true",
            help="Sweep and prune once, then exit (what a cron line would run).",
        )

    def handle(self, *args: Any, sweep_every: float, prune_every: float, once: bool, **options: Any) -> None:
        if sweep_every < 1 or prune_every < 1:
            raise CommandError("--sweep-every and --prune-every must be at least 1 second.")
        stopping = threading.Event()  # only for its interruptible wait: no thread is started

        def stop(signum: int, frame: FrameType | None) -> None:
            self.stdout.write(f"Received {signal.Signals(signum).name}: stopping after the current job.")
            stopping.set()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        verbosity = options["verbosity"]
        try:
            if not once:
                self.stdout.write(
                    f"Sweeping every {sweep_every:g} s and pruning every {prune_every:g} s; SIGTERM or Ctrl-C stops."
                )
            next_sweep = next_prune = time.monotonic()
            while not stopping.is_set():
                now = time.monotonic()
                if now >= next_sweep:
                    self._run("webhooks_sweep", verbosity)
                    next_sweep = now + sweep_every
                if now >= next_prune and not stopping.is_set():
                    self._run("webhooks_prune", verbosity)
                    next_prune = now + prune_every
                if once:
                    return
                stopping.wait(max(0.0, min(next_sweep, next_prune) - time.monotonic()))
                close_old_connections()  # as a request would: one the database dropped meanwhile
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self.stdout.write("Scheduler stopped.")

    def _run(self, command: str, verbosity: int) -> None:
        """Run one job; an error is reported and the loop goes on (the next run catches up)."""
        try:
            call_command(command, stdout=self.stdout, stderr=self.stderr, verbosity=verbosity)
        except Exception as exc:
            self.stderr.write(f"{command} failed: {exc!r}; trying again at its next run.")

"""Stats benchmark: per-endpoint figures from the hourly rows against the same figures from raw attempts.

Runs on SQLite, and on PostgreSQL when DATABASE_URL is set::

    .venv/bin/python bench/stats_endpoint.py                 # 1,000,000 attempts
    .venv/bin/python bench/stats_endpoint.py --attempts 50000 --runs 3   # a quick check
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test .venv/bin/python bench/stats_endpoint.py

Creates its own database (the test database of the selected connection) and drops it at the end.
One busy subscription gets ``--attempts`` attempts spread over 30 days (about 1,400 an hour at
a million: 95 % 2xx, the rest 5xx, 4xx, timeouts, connection errors and redirects, log-normal
latencies), and ``--others`` subscriptions of the same owner get 5 % as many between them.
The hourly rows are then built by ``webhooks_rebuild_stats`` (its code: ``rebuild_subscription``,
timed too), and the figures checked equal to the raw ones.

Timed (median of ``--runs``, the two sides alternating within each run so both see the same
machine noise): ``stats.outcome_buckets`` for the busy subscription over the last 24 hours by
hour and the last 30 days by day, and as the baseline the same figures grouped in the database
from ``DeliveryAttempt`` (its ``(subscription, created_at)`` index); the ratio is baseline /
ours. Then, when the API has it, ``GET /subscriptions/{id}/stats/`` through DRF's test client
(``?bucket=hour`` for 24 h, ``?bucket=day&since=`` for 30 days), and the admin dashboard's
figures for all subscriptions (``dashboard_context``, 7 days by hour).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
os.environ.setdefault("WEBHOOKS_LOG_LEVEL", "WARNING")
os.environ.setdefault("DJANGO_DEBUG", "0")  # DEBUG records every query; production does not
DAYS = 30
#: (share, response status, error class) of the busy subscription's attempts.
OUTCOMES = [
    (0.95, 200, ""),
    (0.02, 500, "http_status"),
    (0.01, 404, "http_status"),
    (0.01, None, "timeout"),
    (0.005, None, "connection"),
    (0.005, 302, "redirect"),
]


def setup_django(sqlite_path: str) -> None:
    import django

    django.setup()
    from django.db import connection

    database = connection.settings_dict
    database["TEST"]["NAME"] = sqlite_path if connection.vendor == "sqlite" else "dwh_bench_stats"
    logging.getLogger("django-q").setLevel(logging.WARNING)


def populate(attempts: int, others: int, now: datetime) -> tuple[Any, Any, list[Any]]:
    """The owner, the busy subscription and the others, with their attempts stored in bulk."""
    from django.contrib.auth import get_user_model

    from django_webhooks.models import Delivery, DeliveryAttempt, Event, Subscription

    owner = get_user_model().objects.create_user("bench-owner", password="x")
    busy = Subscription.objects.create(url="https://busy.example/hook", owner_id=str(owner.pk), event_types=["*"])
    rest = [
        Subscription.objects.create(url=f"https://other{n}.example/hook", owner_id=str(owner.pk), event_types=["*"])
        for n in range(others)
    ]
    event = Event.objects.create(
        event_type="order.created", payload={"id": 1}, body='{"id": 1}', owner_id=str(owner.pk)
    )
    deliveries = {s.pk: Delivery.objects.create(event=event, subscription=s) for s in [busy, *rest]}
    rng = random.Random(16)
    weights = [share for share, _status, _error in OUTCOMES]
    headers = {
        "webhook-id": "msg_2d5b0d1f8a6c4e0f9b3a7c1d",
        "webhook-timestamp": "1764600000",
        "webhook-signature": "v1,<redacted>",
        "content-type": "application/json",
        "user-agent": "django-webhooks",
    }
    start = now - timedelta(days=DAYS)
    span = (now - start).total_seconds()
    plan = [(busy, attempts)] + [(s, max(attempts // 20 // max(others, 1), 1)) for s in rest]
    total = sum(count for _s, count in plan)
    made = 0
    began = time.perf_counter()
    for subscription, count in plan:
        delivery = deliveries[subscription.pk]
        batch: list[DeliveryAttempt] = []
        for _ in range(count):
            _share, status, error = rng.choices(OUTCOMES, weights)[0]
            duration = None if error == "connection" else min(int(rng.lognormvariate(math.log(80), 0.9)), 120_000)
            batch.append(
                DeliveryAttempt(
                    delivery=delivery,
                    subscription=subscription,
                    attempt_number=1,
                    created_at=start + timedelta(seconds=rng.random() * span),
                    url=subscription.url,
                    request_headers=headers,
                    response_status=status,
                    response_headers={"Content-Type": "text/plain"} if status else {},
                    response_body="ok" if status == 200 else "",
                    duration_ms=15_000 if error == "timeout" else duration,
                    error_class=error,
                    succeeded=status == 200,
                )
            )
            if len(batch) == 5000:
                DeliveryAttempt.objects.bulk_create(batch)
                made += len(batch)
                batch = []
                if made % 200_000 == 0:
                    print(f"  stored {made:,} / {total:,} attempts ({time.perf_counter() - began:.0f} s)", flush=True)
        DeliveryAttempt.objects.bulk_create(batch)
        made += len(batch)
    print(f"  stored {made:,} attempts in {time.perf_counter() - began:.0f} s", flush=True)
    return owner, busy, rest


def raw_buckets(subscription_id: int, since: datetime, until: datetime, bucket: str) -> list[Any]:
    """The baseline: the figures of ``stats.outcome_buckets`` grouped in the database from the attempts."""
    from django.db.models import Case, Count, IntegerField, Q, Sum, Value, When
    from django.db.models.functions import TruncDay, TruncHour

    from django_webhooks.models import DeliveryAttempt
    from django_webhooks.stats import BUCKET_SIZES, LATENCY_BOUNDS_MS, HourlyOutcomes, bucket_start

    latency = Case(
        When(duration_ms__isnull=True, then=Value(-1)),
        *(When(duration_ms__lte=bound, then=Value(n)) for n, bound in enumerate(LATENCY_BOUNDS_MS)),
        default=Value(len(LATENCY_BOUNDS_MS)),
        output_field=IntegerField(),
    )
    # The rule of attempt_stats.failure_class, as SQL.
    failure = Case(
        When(succeeded=True, then=Value("")),
        When(error_class="timeout", then=Value("timeout")),
        When(error_class__in=["connection", "dns", "tls"], then=Value("connection")),
        When(
            Q(error_class__in=["", "http_status"], response_status__gte=400, response_status__lt=500),
            then=Value("4xx"),
        ),
        When(
            Q(error_class__in=["", "http_status"], response_status__gte=500, response_status__lt=600),
            then=Value("5xx"),
        ),
        default=Value("other"),
    )
    first = bucket_start(since, bucket)
    trunc = TruncDay if bucket == "day" else TruncHour
    rows = (
        DeliveryAttempt.objects.filter(subscription_id=subscription_id, created_at__gte=first, created_at__lt=until)
        .annotate(start=trunc("created_at", tzinfo=UTC), latency=latency, failure=failure)
        .values("start", "latency", "failure")
        .annotate(n=Count("id"), duration=Sum("duration_ms"))
        .order_by()
    )
    buckets = {}
    start = first
    while start < until:
        buckets[start] = HourlyOutcomes(start)
        start += BUCKET_SIZES[bucket]
    for row in rows:
        found = buckets[row["start"]]
        if row["failure"]:
            found.failed += row["n"]
            found.failures[row["failure"]] += row["n"]
        else:
            found.succeeded += row["n"]
        if row["latency"] >= 0:
            found.histogram[row["latency"]] += row["n"]
            found.duration_ms_total += row["duration"] or 0
    return list(buckets.values())


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def api_get(client: Any, path: str, query: dict[str, str]) -> None:
    response = client.get(path, query)
    assert response.status_code == 200, response.content[:500]


def timed(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def run(attempts: int, others: int, runs: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.urls import NoReverseMatch, reverse
    from django.utils import timezone
    from rest_framework.test import APIClient

    from django_webhooks.models import AttemptStats
    from django_webhooks.stats import dashboard_context, outcome_buckets

    now = timezone.now()
    print(
        f"{connection.vendor}: {attempts:,} attempts of one subscription over {DAYS} days, {others} others", flush=True
    )
    owner, busy, _rest = populate(attempts, others, now)
    rebuild_s = timed(lambda: call_command("webhooks_rebuild_stats", "--until", now.isoformat(), verbosity=0))
    # The current hour is left to the workers by default; count it too, as they would have.
    call_command(
        "webhooks_rebuild_stats",
        "--since",
        now.replace(minute=0, second=0, microsecond=0).isoformat(),
        "--until",
        (now + timedelta(hours=1)).isoformat(),
        verbosity=0,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    rows = AttemptStats.objects.count()
    print(f"  hourly rows: {rows:,} (webhooks_rebuild_stats: {rebuild_s:.1f} s)", flush=True)

    windows = [("24 h by hour", now - timedelta(hours=24), "hour"), ("30 d by day", now - timedelta(days=DAYS), "day")]
    stats = AttemptStats.objects.filter(subscription_id=busy.pk)
    for label, since, bucket in windows:
        ours = outcome_buckets(stats, since, now, bucket)
        raw = raw_buckets(busy.pk, since, now, bucket)
        assert ours == raw, f"{label}: the hourly rows and the attempts disagree"
    print(f"  figures equal to the raw attempts' ({sum(b.total for b in ours):,} attempts in 30 days)", flush=True)

    client = APIClient()
    client.force_authenticate(owner)
    try:
        api = reverse("django_webhooks_api:subscription-stats", args=[busy.pk])
    except NoReverseMatch:
        api = None
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        for label, since, bucket in windows:
            samples.setdefault(f"ours {label}", []).append(
                timed(lambda s=since, b=bucket: outcome_buckets(stats, s, now, b))
            )
            samples.setdefault(f"raw {label}", []).append(
                timed(lambda s=since, b=bucket: raw_buckets(busy.pk, s, now, b))
            )
            if api:
                query = {"bucket": bucket, "since": since.isoformat(), "until": now.isoformat()}
                samples.setdefault(f"api {label}", []).append(timed(lambda q=query: api_get(client, api, q)))
        samples.setdefault("dashboard", []).append(timed(lambda: dashboard_context(now=now)))

    print(f"\n  median of {runs} runs, ms        hourly rows   raw attempts   raw / rows   API (rows)")
    for label, _since, _bucket in windows:
        ours_ms, raw_ms = median_ms(samples[f"ours {label}"]), median_ms(samples[f"raw {label}"])
        api_ms = f"{median_ms(samples[f'api {label}']):10.1f}" if api else "   (no API)"
        print(f"  outcome_buckets, {label:<13} {ours_ms:10.1f}   {raw_ms:12.1f}   {raw_ms / ours_ms:9.0f}x   {api_ms}")
    print(f"  dashboard_context (all, 7 d)  {median_ms(samples['dashboard']):10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attempts", type=int, default=1_000_000, help="attempts of the busy subscription")
    parser.add_argument("--others", type=int, default=20, help="other subscriptions (5 %% as many attempts in all)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dwh-bench-") as directory:
        setup_django(os.path.join(directory, "bench.sqlite3"))
        from django.db import connection

        old_name = connection.settings_dict["NAME"]
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
        try:
            run(args.attempts, args.others, args.runs)
        finally:
            connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()

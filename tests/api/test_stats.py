"""The stats endpoint (django_webhooks/api/stats.py, ``SubscriptionViewSet.stats``): one subscription's
attempts per hour or day from the hourly counts, owner-scoped, every bad window a 400."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from django_webhooks.delivery import attempt_stats, operations
from django_webhooks.models import AttemptStats, Delivery, DeliveryAttempt, ErrorClass
from tests.api import API, client_for
from tests.receiver import Reply

pytestmark = pytest.mark.django_db

#: The hour the fixture's attempts were made in (UTC), far from any boundary of "now".
HOUR = datetime(2024, 5, 1, 10, tzinfo=UTC)


def stats_url(subscription, **params) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"{API}/subscriptions/{subscription.pk}/stats/" + (f"?{query}" if query else "")


def record(delivery, *, at, status=200, error_class="", duration_ms=40, number=1):
    """One attempt, counted as ``outcomes.record`` counts it (``attempt_stats.add``)."""
    attempt = DeliveryAttempt.objects.create(
        delivery=delivery,
        subscription=delivery.subscription,
        attempt_number=number,
        created_at=at,
        url=delivery.subscription.url,
        response_status=status,
        duration_ms=duration_ms,
        error_class=error_class,
        succeeded=status is not None and 200 <= status < 300,
    )
    attempt_stats.add([attempt])
    return attempt


@pytest.fixture
def subscription(alice, make_subscription):
    return make_subscription("http://127.0.0.1:9/hook", owner_id=str(alice.pk))


@pytest.fixture
def activity(subscription, make_delivery):
    """At 10:xx: 4 successes (20, 40, 40, 3000 ms), a 503, a 404 and a timeout; at 12:xx: one success."""
    delivery = make_delivery(subscription)
    for minute, ms in ((1, 20), (2, 40), (3, 40), (4, 3000)):
        record(delivery, at=HOUR + timedelta(minutes=minute), duration_ms=ms)
    record(delivery, at=HOUR + timedelta(minutes=5), status=503, error_class=ErrorClass.HTTP_STATUS, duration_ms=90)
    record(delivery, at=HOUR + timedelta(minutes=6), status=404, error_class=ErrorClass.HTTP_STATUS, duration_ms=30)
    record(delivery, at=HOUR + timedelta(minutes=7), status=None, error_class=ErrorClass.TIMEOUT, duration_ms=15000)
    record(delivery, at=HOUR + timedelta(hours=2, minutes=30), duration_ms=45)
    return delivery


# --- figures ----------------------------------------------------------------------------------


def test_hourly_buckets_with_failures_by_class_and_estimated_percentiles(client, subscription, activity):
    response = client.get(stats_url(subscription, since="2024-05-01T10:00:00Z", until="2024-05-01T13:00:00Z"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subscription"] == subscription.pk and body["bucket"] == "hour"
    assert body["since"] == "2024-05-01T10:00:00Z" and body["until"] == "2024-05-01T13:00:00Z"
    assert [b["start"] for b in body["buckets"]] == [
        "2024-05-01T10:00:00Z",
        "2024-05-01T11:00:00Z",
        "2024-05-01T12:00:00Z",
    ]
    ten, eleven, twelve = body["buckets"]
    assert (ten["attempts"], ten["successes"], ten["failed"]) == (7, 4, 3)
    assert ten["failures"] == {"4xx": 1, "5xx": 1, "timeout": 1, "connection": 0, "other": 0}
    assert ten["success_rate"] == pytest.approx(4 / 7)
    # 7 latencies: 20, 30, 40, 40, 90 | 3000 | 15000 -> the median is in the 25-50 ms bucket
    assert 25 <= ten["p50_ms"] <= 50
    assert 2500 <= ten["p95_ms"] <= 30000
    assert ten["p50_ms"] <= ten["p95_ms"] <= ten["p99_ms"]
    assert eleven == {
        "start": "2024-05-01T11:00:00Z",
        "attempts": 0,
        "successes": 0,
        "failed": 0,
        "failures": {"4xx": 0, "5xx": 0, "timeout": 0, "connection": 0, "other": 0},
        "success_rate": None,
        "p50_ms": None,
        "p95_ms": None,
        "p99_ms": None,
    }
    assert (twelve["attempts"], twelve["successes"]) == (1, 1)
    assert 25 <= twelve["p50_ms"] <= 50
    totals = body["totals"]
    assert (totals["attempts"], totals["successes"], totals["failed"]) == (8, 5, 3)
    assert totals["success_rate"] == pytest.approx(5 / 8)


def test_daily_buckets_and_a_window_that_starts_mid_bucket(client, subscription, activity, make_delivery):
    record(activity, at=HOUR - timedelta(days=1), status=500, error_class=ErrorClass.HTTP_STATUS, number=2)
    response = client.get(
        stats_url(subscription, since="2024-04-30T18:30:00%2B02:00", until="2024-05-02T00:00:00Z", bucket="day")
    )
    body = response.json()
    assert body["since"] == "2024-04-30T00:00:00Z"  # 16:30 UTC falls on April 30
    assert [(b["start"], b["attempts"], b["failed"]) for b in body["buckets"]] == [
        ("2024-04-30T00:00:00Z", 1, 1),
        ("2024-05-01T00:00:00Z", 8, 3),
    ]
    assert body["totals"]["failures"]["5xx"] == 2


def test_defaults_are_the_last_24_hours_by_hour(client, subscription, make_delivery):
    response = client.get(stats_url(subscription))
    body = response.json()
    assert response.status_code == 200
    assert body["bucket"] == "hour"
    assert len(body["buckets"]) in (24, 25)  # the hour 24 h ago is counted whole, the current one so far
    assert body["totals"]["attempts"] == 0
    day = client.get(stats_url(subscription, bucket="day")).json()
    assert len(day["buckets"]) in (30, 31)
    blank = client.get(stats_url(subscription, since="", until="", bucket="")).json()  # blank is left out
    assert blank["bucket"] == "hour" and len(blank["buckets"]) in (24, 25)


def test_attempts_a_delivery_makes_are_in_the_stats(client, subscription, receiver):
    """The figures come from the attempts the engine records (a test event through the lane path)."""
    subscription.url = receiver.url("/hook")
    subscription.save()
    receiver.script = [Reply(200), Reply(500)]
    operations.send_test_event(subscription)
    operations.send_test_event(subscription)
    body = client.get(stats_url(subscription)).json()
    assert (body["totals"]["attempts"], body["totals"]["successes"]) == (2, 1)
    assert body["totals"]["failures"]["5xx"] == 1
    assert body["totals"]["p50_ms"] is not None


def test_the_figures_survive_the_pruning_of_the_attempts(client, subscription, activity):
    DeliveryAttempt.objects.all().delete()
    body = client.get(stats_url(subscription, since="2024-05-01T10:00:00Z", until="2024-05-01T11:00:00Z")).json()
    assert body["totals"]["attempts"] == 7


def test_the_work_does_not_grow_with_the_window(client, subscription, activity, django_assert_max_num_queries):
    """One query for the subscription and one for the buckets, whether 3 hours or 1,000."""
    with django_assert_max_num_queries(4) as small:
        client.get(stats_url(subscription, since="2024-05-01T10:00:00Z", until="2024-05-01T13:00:00Z"))
    with django_assert_max_num_queries(len(small)) as large:
        client.get(stats_url(subscription, since="2024-04-01T00:00:00Z", until="2024-05-12T16:00:00Z"))
    assert len(large) == len(small)


# --- scope ------------------------------------------------------------------------------------


def test_another_owners_subscription_is_not_found(client, make_subscription, activity):
    bob = get_user_model().objects.create_user("bob")
    bobs = make_subscription("http://127.0.0.1:9/bob", owner_id=str(bob.pk))
    record(Delivery.objects.create(event=activity.event, subscription=bobs), at=HOUR)
    response = client.get(stats_url(bobs))
    assert response.status_code == 404
    own = client_for(bob).get(stats_url(bobs, since="2024-05-01T10:00:00Z", until="2024-05-01T11:00:00Z"))
    assert own.json()["totals"]["attempts"] == 1


def test_another_subscriptions_attempts_are_not_counted(client, subscription, make_subscription, activity, alice):
    other = make_subscription("http://127.0.0.1:9/other", owner_id=str(alice.pk))
    record(Delivery.objects.create(event=activity.event, subscription=other), at=HOUR, status=500)
    body = client.get(stats_url(other, since="2024-05-01T10:00:00Z", until="2024-05-01T11:00:00Z")).json()
    assert body["totals"]["attempts"] == 1
    mine = client.get(stats_url(subscription, since="2024-05-01T10:00:00Z", until="2024-05-01T11:00:00Z")).json()
    assert mine["totals"]["attempts"] == 7


def test_staff_see_every_owners_stats_only_when_the_server_allows_it(make_subscription, activity, django_user_model):
    staff = django_user_model.objects.create_user("staffer", is_staff=True)
    path = stats_url(activity.subscription, since="2024-05-01T10:00:00Z", until="2024-05-02T00:00:00Z", all_owners=1)
    assert client_for(staff).get(path).status_code == 404
    with override_settings(DJANGO_WEBHOOKS={"API_STAFF_SEES_ALL": True, "ALLOW_LOOPBACK": True}):
        assert client_for(staff).get(path).json()["totals"]["attempts"] == 8


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until", "after since"),
        ({"since": "2024-05-01T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until", "after since"),
        ({"bucket": "week"}, "bucket", "not a valid choice"),
        ({"since": "2024-01-01T00:00:00Z", "until": "2024-03-01T00:00:00Z"}, "since", "at most 1000"),
        ({"since": "1970-01-01T00:00:00Z", "until": "2024-03-01T00:00:00Z", "bucket": "day"}, "since", "at most 1000"),
        ({"since": "2024-05-01T00:00:00"}, "since", "time zone offset"),
        ({"until": "2024-05-01T10:00"}, "until", "time zone offset"),
        ({"since": "yesterday"}, "since", "Datetime has wrong format"),
        ({"since": "2024-05-01"}, "since", "time zone offset"),
        ({"since": "2024-13-01T00:00:00Z"}, "since", "Datetime has wrong format"),
        ({"since": "0001-01-01T00:00:00%2B01:00"}, "since", ""),
        ({"since": "9999-12-31T23:59:59Z", "until": "9999-12-31T23:59:59.999999Z"}, "since", "between 1970 and 9000"),
        ({"until": "1969-12-31T23:00:00Z"}, "until", "between 1970 and 9000"),
        ({"since": "%00"}, "since", ""),
        ({"since": "\ud800".encode("utf-8", "surrogatepass").decode("latin-1")}, "since", ""),
    ],
)
def test_a_bad_window_is_a_400_with_the_field(client, subscription, params, field, message):
    response = client.get(stats_url(subscription, **params))
    assert response.status_code == 400, response.content
    errors = response.json()
    assert field in errors, errors
    assert message in " ".join(errors[field])


def test_the_largest_window_is_answered(client, subscription):
    response = client.get(stats_url(subscription, since="2024-01-01T00:00:00Z", until="2024-02-11T16:00:00Z"))
    assert response.status_code == 200
    assert len(response.json()["buckets"]) == 1000


def test_unauthenticated_calls_are_refused(subscription):
    from rest_framework.test import APIClient

    assert APIClient().get(stats_url(subscription)).status_code in (401, 403)
    assert AttemptStats.objects.count() == 0

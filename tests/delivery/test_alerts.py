"""Alerts before an endpoint dies (django_webhooks/delivery/alerts.py): once per threshold and
incident, a recovery that closes it, and the operational events delivered to the owner's other
subscriptions over loopback HTTP."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.utils import timezone, translation

from django_webhooks import catalog, signals
from django_webhooks.delivery import alerts, fanout, health, lanes, operations
from django_webhooks.metrics import recording
from django_webhooks.models import Event, Subscription
from tests.receiver import Reply

OPERATIONAL = [catalog.ENDPOINT_FAILING, catalog.ENDPOINT_RECOVERED, catalog.ENDPOINT_DISABLED]
#: A failure budget of 1000 s makes each percent 10 s; the circuit stays out of the way.
BUDGET = {"AUTO_DISABLE_AFTER": 1000, "ALERT_FAILING_AFTER": 3, "CIRCUIT_BREAKER_THRESHOLD": 1000}


def webhooks(**overrides):
    return override_settings(DJANGO_WEBHOOKS={**settings.DJANGO_WEBHOOKS, **overrides})


@pytest.fixture
def owner(db):
    return get_user_model().objects.create(username="shop-owner", email="owner@example.com")


@pytest.fixture
def subscription(owner, make_subscription):
    return make_subscription("https://hooks.example.com/orders?token=s3cret", owner_id=str(owner.pk))


@pytest.fixture
def notices():
    """Every alert signal, as ``(kind, subscription id, detail)``, in order."""
    received: list[tuple[str, int, object]] = []
    lock = threading.Lock()

    def on_failing(sender, subscription, percent, consecutive_failures, failing_since, **kwargs):
        with lock:
            received.append(("failing", subscription.pk, percent))

    def on_recovered(sender, subscription, failing_since, consecutive_failures, recovered_at, **kwargs):
        with lock:
            received.append(("recovered", subscription.pk, consecutive_failures))

    def on_disabled(sender, subscription, reason, cause, **kwargs):
        with lock:
            received.append(("disabled", subscription.pk, cause))

    pairs = [
        (signals.endpoint_failing, on_failing),
        (signals.endpoint_recovered, on_recovered),
        (signals.subscription_disabled, on_disabled),
    ]
    for signal, receiver in pairs:
        signal.connect(receiver)
    yield received
    for signal, receiver in pairs:
        signal.disconnect(receiver)


@pytest.fixture
def state_changes(monkeypatch):
    """``metrics.endpoint_state_changed`` calls, as ``(change, reason)``."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(recording, "endpoint_state_changed", lambda change, reason="": calls.append((change, reason)))
    return calls


def operational_events(subscription=None):
    events = Event.objects.filter(event_type__in=OPERATIONAL).order_by("id")
    return [
        (event.event_type, event.payload)
        for event in events
        if subscription is None or event.payload["subscription_id"] == subscription.pk
    ]


def fail(subscription, times, at):
    health.record_outcomes(subscription, [False] * times, now=at)


def fresh(subscription):
    return Subscription.objects.get(pk=subscription.pk)


# -- once per threshold and incident ---------------------------------------------------------


@pytest.mark.django_db
@webhooks(**BUDGET)
def test_each_threshold_fires_once_per_incident_and_recovery_closes_it(subscription, notices):
    start = timezone.now() - timedelta(hours=1)
    fail(subscription, 2, start)
    assert notices == [], "two failures are not yet failing"
    fail(subscription, 1, start + timedelta(seconds=1))
    assert notices == [("failing", subscription.pk, None)]
    fail(subscription, 5, start + timedelta(seconds=2))
    assert len(notices) == 1, "more failures, no second failing alert"

    fail(subscription, 1, start + timedelta(seconds=499))
    assert len(notices) == 1, "49.9 % of the budget"
    fail(subscription, 1, start + timedelta(seconds=500))
    fail(subscription, 3, start + timedelta(seconds=600))
    assert notices[1:] == [("failing", subscription.pk, 50)]
    # The circuit spaces attempts out: the next failure comes at 95 %, past 70 and 90 at once.
    fail(subscription, 1, start + timedelta(seconds=950))
    assert notices[2:] == [("failing", subscription.pk, 90)], "only the strongest of the crossed thresholds"
    assert fresh(subscription).alert_level == alerts.budget_level(90)

    health.record_outcomes(subscription, [False, True], now=start + timedelta(seconds=960))
    assert notices[3:] == [("recovered", subscription.pk, 14)], "a failure wiped out by a later success"
    health.record_outcome(subscription, True, now=start + timedelta(seconds=970))
    assert len(notices) == 4, "the recovery is announced once"
    assert fresh(subscription).alert_level == alerts.LEVEL_NONE

    again = start + timedelta(seconds=1000)
    fail(subscription, 3, again)
    fail(subscription, 1, again + timedelta(seconds=700))
    assert notices[4:] == [("failing", subscription.pk, None), ("failing", subscription.pk, 70)], "a new incident"

    kinds = [
        (event_type, data.get("alert"), data.get("threshold_percent")) for event_type, data in operational_events()
    ]
    assert kinds == [
        (catalog.ENDPOINT_FAILING, "failing", None),
        (catalog.ENDPOINT_FAILING, "budget", 50),
        (catalog.ENDPOINT_FAILING, "budget", 90),
        (catalog.ENDPOINT_RECOVERED, None, None),
        (catalog.ENDPOINT_FAILING, "failing", None),
        (catalog.ENDPOINT_FAILING, "budget", 70),
    ]


@pytest.mark.django_db
@webhooks(**BUDGET)
def test_no_recovered_notice_unless_an_alert_was_sent(subscription, notices):
    now = timezone.now()
    fail(subscription, 2, now)
    health.record_outcome(subscription, True, now=now)
    assert notices == [] and operational_events() == []


@pytest.mark.django_db
@webhooks(**BUDGET)
def test_stale_copies_of_the_subscription_alert_once(subscription, notices):
    """Workers record outcomes with the copies they claimed: the database decides who alerts."""
    now = timezone.now()
    copies = [fresh(subscription) for _ in range(3)]
    for copy in copies:
        fail(copy, 3, now)
    for copy in copies:
        fail(copy, 1, now + timedelta(seconds=1))
    assert notices == [("failing", subscription.pk, None)]
    stale = [fresh(subscription) for _ in range(3)]
    for copy in stale:
        health.record_outcome(copy, True, now=now + timedelta(seconds=2))
    assert notices[1:] == [("recovered", subscription.pk, 12)]


@pytest.mark.django_db(transaction=True)
@webhooks(**BUDGET)
def test_concurrent_workers_send_each_alert_and_the_recovery_once(subscription, notices):
    """Several workers, each in its own transaction and connection, record outcomes at once."""
    workers = 4
    start = timezone.now() - timedelta(hours=1)
    errors: list[BaseException] = []

    def in_parallel(record):
        barrier = threading.Barrier(workers)

        def work():
            try:
                copy = fresh(subscription)
                barrier.wait(timeout=30)
                record(copy)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not errors and not any(thread.is_alive() for thread in threads)

    in_parallel(lambda copy: [fail(copy, 1, start) for _ in range(3)])
    in_parallel(lambda copy: fail(copy, 2, start + timedelta(seconds=720)))
    in_parallel(lambda copy: health.record_outcome(copy, True, now=start + timedelta(seconds=730)))

    assert sorted(notices, key=str) == sorted(
        [("failing", subscription.pk, None), ("failing", subscription.pk, 70), ("recovered", subscription.pk, 20)],
        key=str,
    )
    assert [event_type for event_type, _ in operational_events()].count(catalog.ENDPOINT_FAILING) == 2
    assert fresh(subscription).alert_level == alerts.LEVEL_NONE


# -- disabling, enabling, the circuit --------------------------------------------------------


@pytest.mark.django_db
@webhooks(**{**BUDGET, "CIRCUIT_BREAKER_THRESHOLD": 5})
def test_auto_disable_is_the_last_step_and_enable_starts_over(subscription, notices, state_changes):
    start = timezone.now() - timedelta(hours=1)
    fail(subscription, 5, start)
    assert state_changes == [], "counted once the transaction commits"
    fail(subscription, 1, start + timedelta(seconds=1000))
    assert [kind for kind, _, _ in notices] == ["failing", "disabled"], "disabling overtakes the thresholds"
    assert notices[-1] == ("disabled", subscription.pk, "auto")
    stored = fresh(subscription)
    assert not stored.enabled and stored.alert_level == alerts.LEVEL_DISABLED

    event_type, data = operational_events()[-1]
    assert event_type == catalog.ENDPOINT_DISABLED
    assert data["cause"] == "auto" and data["budget_percent"] == 100 and data["consecutive_failures"] == 6
    assert data["reason"] == stored.disabled_reason and data["url"] == "https://hooks.example.com/orders"

    # A test event that still fails on the disabled subscription alerts nothing more.
    fail(subscription, 3, start + timedelta(seconds=1001))
    assert len(notices) == 2

    operations.enable(subscription)
    stored = fresh(subscription)
    assert stored.enabled and stored.alert_level == alerts.LEVEL_NONE and stored.failing_since is None
    assert len(notices) == 2, "enabling ends the incident without a recovered notice"
    fail(subscription, 3, timezone.now())
    assert notices[-1] == ("failing", subscription.pk, None), "the next streak alerts again"

    operations.disable(subscription, "Partner asked.")
    assert notices[-1] == ("disabled", subscription.pk, "manual")
    assert operational_events()[-1][1]["cause"] == "manual"


@pytest.mark.django_db
@webhooks(**{**BUDGET, "CIRCUIT_BREAKER_THRESHOLD": 2})
def test_state_changes_are_counted_once(subscription, state_changes, django_capture_on_commit_callbacks):
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        fail(subscription, 2, now)
        stale = [fresh(subscription), fresh(subscription)]
        for copy in stale:
            health.record_outcome(copy, True, now=now + timedelta(seconds=61))
        health.disable_subscription(subscription, "The endpoint answered 410 Gone.")
        operations.enable(subscription)
        operations.enable(subscription)
    assert state_changes == [
        ("circuit_opened", ""),
        ("circuit_closed", ""),
        ("disabled", "gone"),
        ("enabled", "manual"),
    ]


# -- operational events, delivered -----------------------------------------------------------


def drain() -> None:
    """Fan out and deliver everything due now, the way the workers' tasks do, until nothing is left."""
    for _ in range(20):
        fanned_out = fanout.fan_out_all_pending()
        delivered = lanes.deliver_due(time_budget=1)
        if not fanned_out and not delivered:
            return
    raise AssertionError("work kept coming")


@pytest.mark.django_db
@webhooks(ALERT_FAILING_AFTER=2, CIRCUIT_BREAKER_THRESHOLD=1000)
def test_the_owners_operational_subscription_receives_the_events(receiver, owner, make_subscription, make_delivery):
    receiver.routes = {"/orders": [Reply(503)]}
    someone_else = get_user_model().objects.create(username="someone-else")
    orders = make_subscription(
        receiver.url("/orders"), owner_id=str(owner.pk), event_types=["order.created", "webhook.endpoint.*"]
    )
    make_subscription(receiver.url("/ops"), owner_id=str(owner.pk), event_types=OPERATIONAL)
    make_subscription(receiver.url("/everything"), owner_id=str(owner.pk), event_types=["*"])
    make_subscription(receiver.url("/others"), owner_id=str(someone_else.pk), event_types=["webhook.endpoint.*"])
    for _ in range(2):
        make_delivery(orders)

    drain()
    assert len(receiver.received("/orders")) == 2
    (failing,) = receiver.received("/ops")
    envelope = json.loads(failing.body)
    assert envelope["type"] == catalog.ENDPOINT_FAILING
    data = envelope["data"]
    assert data["subscription_id"] == orders.pk and data["url"] == receiver.url("/orders")
    assert data["alert"] == "failing" and data["consecutive_failures"] == 2
    assert data["last_status"] == 503 and data["failing_since"] and data["disable_at"]
    assert catalog.schema_errors(catalog.BUILTIN_EVENT_TYPES[catalog.ENDPOINT_FAILING]["schema"], data) == []

    receiver.routes = {}
    make_delivery(orders)
    drain()
    recovered = json.loads(receiver.received("/ops")[-1].body)
    assert recovered["type"] == catalog.ENDPOINT_RECOVERED
    assert recovered["data"]["consecutive_failures"] == 2 and recovered["data"]["last_status"] == 200

    operations.disable(orders, "Moving to a new endpoint.")
    drain()
    disabled = json.loads(receiver.received("/ops")[-1].body)
    assert disabled["type"] == catalog.ENDPOINT_DISABLED and disabled["data"]["cause"] == "manual"

    assert [json.loads(r.body)["type"] for r in receiver.received("/ops")] == OPERATIONAL
    assert receiver.received("/everything") == [], "* does not select operational events"
    assert receiver.received("/others") == [], "another owner's events"
    assert len(receiver.received("/orders")) == 3, "never the subscription the event is about"


@pytest.mark.django_db
@webhooks(OPERATIONAL_EVENTS=False, **BUDGET)
def test_without_operational_events_nothing_is_recorded(subscription, notices):
    now = timezone.now()
    fail(subscription, 3, now)
    health.record_outcome(subscription, True, now=now)
    operations.disable(subscription, "Paused.")
    assert [kind for kind, _, _ in notices] == ["failing", "recovered", "disabled"], "the signals still go"
    assert operational_events() == []


def test_operational_types_are_selected_only_by_name_or_their_pattern():
    for name in OPERATIONAL:
        assert catalog.type_matches(name, name) and catalog.type_matches(catalog.OPERATIONAL_PATTERN, name)
        for pattern in ("*", "webhook.*.*", "*.endpoint.*"):
            assert not catalog.type_matches(pattern, name)
        assert catalog.patterns_matching(name) == sorted({name, catalog.OPERATIONAL_PATTERN})
        spec = catalog.BUILTIN_EVENT_TYPES[name]
        assert catalog.schema_errors(spec["schema"], spec["example"]) == [], "the documented example is valid"


@pytest.mark.django_db
def test_operational_types_are_in_the_catalog_for_subscribers():
    known = catalog.known_event_types()
    assert all(name in known and known[name]["description"] for name in OPERATIONAL)
    catalog.validate_subscribed_event_types([*OPERATIONAL, catalog.OPERATIONAL_PATTERN])
    assert catalog.thin_types(OPERATIONAL) == set()


# -- e-mail ----------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("language", "subjects", "phrases"),
    [
        (
            "en",
            ["Webhook endpoint failing: ", "Webhook endpoint failing: ", "Webhook endpoint recovered: "],
            [
                "failed its last 3 delivery attempts in a row",
                "It has used 70% of the time it may fail",
                "It had failed 4 times in a row, from ",
            ],
        ),
        (
            "de",
            [
                "Webhook-Endpunkt schlägt fehl: ",
                "Webhook-Endpunkt schlägt fehl: ",
                "Webhook-Endpunkt funktioniert wieder: ",
            ],
            [
                "hat seine letzten 3 Zustellversuche nacheinander nicht angenommen",
                "Er hat 70 % der Zeit verbraucht, die er fehlschlagen darf",
                "Er war 4 Mal nacheinander fehlgeschlagen, von ",
            ],
        ),
    ],
)
def test_the_owner_is_emailed_in_the_active_language(
    subscription, language, subjects, phrases, django_capture_on_commit_callbacks
):
    start = timezone.now() - timedelta(hours=1)
    with (
        webhooks(NOTIFY_OWNER_ON_ALERT=True, **BUDGET),
        translation.override(language),
        django_capture_on_commit_callbacks(execute=True),
    ):
        fail(subscription, 3, start)
        fail(subscription, 1, start + timedelta(seconds=700))
        health.record_outcome(subscription, True, now=start + timedelta(seconds=710))

    assert [message.to for message in mail.outbox] == [["owner@example.com"]] * 3
    url = "https://hooks.example.com/orders"
    assert [message.subject for message in mail.outbox] == [subject + url for subject in subjects]
    for message, phrase in zip(mail.outbox, phrases, strict=True):
        assert url in message.body and "s3cret" not in message.body
        assert phrase in message.body
        assert "{%" not in message.body and "%(" not in message.body
    assert f"{start:%Y-%m-%d %H:%M} UTC" in mail.outbox[2].body


@pytest.mark.django_db
def test_the_disabled_email_is_translated_too(subscription, django_capture_on_commit_callbacks):
    with (
        webhooks(NOTIFY_OWNER_ON_DISABLE=True),
        translation.override("de"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        operations.disable(subscription, "Partner asked.")
    (message,) = mail.outbox
    assert message.subject == f"Webhook-Endpunkt deaktiviert: {subscription.url}"
    assert "wurde deaktiviert" in message.body and "Grund: Partner asked." in message.body


@pytest.mark.django_db
@webhooks(NOTIFY_OWNER_ON_ALERT=True, **BUDGET)
def test_no_alert_email_without_an_address_or_unless_asked(owner, subscription, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True), webhooks(NOTIFY_OWNER_ON_ALERT=False, **BUDGET):
        fail(subscription, 3, timezone.now())
    assert mail.outbox == []
    owner.email = ""
    owner.save()
    with django_capture_on_commit_callbacks(execute=True):
        health.record_outcome(subscription, True)
        fail(subscription, 3, timezone.now())
    assert mail.outbox == []

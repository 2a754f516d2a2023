"""The endpoint handshake (django_webhooks/delivery/handshake.py): the claim rule that holds an
unverified subscription's deliveries, the challenge and its answers, retries, URL changes, the
sweeper, the admin and the API, and end to end through real workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from standardwebhooks.webhooks import Webhook as StandardWebhook

from django_webhooks import tasks
from django_webhooks.capture.events import send_event
from django_webhooks.delivery import handshake
from django_webhooks.delivery.claiming import claim_lanes, due_count, next_due
from django_webhooks.delivery.endpoints import Endpoints
from django_webhooks.delivery.lanes import deliver_due, send_lane
from django_webhooks.metrics.collectors import queue_figures
from django_webhooks.models import Delivery, DeliveryAttempt, DeliveryStatus, Subscription
from django_webhooks.receiver_auth import configure_auth
from django_webhooks.secret_store import current_secret, rotate_secret
from django_webhooks.testing import drain
from tests.admin import action, messages_of
from tests.admin import url as admin_url
from tests.api import API, API_ONLY, client_for
from tests.receiver import ReceivedRequest, Receiver, Reply

pytestmark = pytest.mark.django_db


def challenge_of(request: ReceivedRequest) -> str | None:
    document = json.loads(request.body)
    if document.get("type") != handshake.VERIFICATION_EVENT_TYPE:
        return None
    return document["data"]["challenge"]


def echo_json(request: ReceivedRequest) -> Reply | None:
    """A receiver that passes: the challenge back as JSON."""
    challenge = challenge_of(request)
    return None if challenge is None else Reply(200, json.dumps({"challenge": challenge}).encode())


def independent_hmac(secret: str, challenge: str) -> str:
    """The HMAC answer, computed from the documented recipe rather than with the library."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    return base64.b64encode(hmac.new(key, challenge.encode(), hashlib.sha256).digest()).decode()


def handshakes(receiver: Receiver) -> list[ReceivedRequest]:
    return [r for r in receiver.received() if challenge_of(r) is not None]


def deliveries_received(receiver: Receiver) -> list[ReceivedRequest]:
    return [r for r in receiver.received() if challenge_of(r) is None]


# --- the claim rule -----------------------------------------------------------------------------


def test_an_unverified_subscription_sends_nothing_and_a_verified_one_gets_the_waiting_deliveries(
    receiver, make_subscription, make_delivery
):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    waiting = [make_delivery(subscription) for _ in range(3)]

    assert due_count() == 0
    assert next_due(timezone.now() - timedelta(seconds=5), 60) is None
    assert queue_figures()["django_webhooks_oldest_due_delivery_age_seconds"] == 0.0
    assert claim_lanes(4) == []
    assert deliver_due(time_budget=1) == 0
    assert receiver.received() == []
    assert all(d.status == DeliveryStatus.PENDING for d in Delivery.objects.all())

    outcome = handshake.verify(subscription)

    assert outcome.passed and outcome.error == ""
    assert due_count() == 3
    assert deliver_due(time_budget=5) == 3
    assert {r.headers["webhook-id"] for r in deliveries_received(receiver)} == {d.message_id for d in waiting}
    assert set(Delivery.objects.values_list("status", flat=True)) == {DeliveryStatus.SUCCEEDED}


def test_a_subscription_that_need_not_verify_sends_at_once(receiver, make_subscription, make_delivery):
    subscription = make_subscription(receiver.url())
    make_delivery(subscription)
    assert handshake.verification_state(subscription) == handshake.VerificationState.NOT_REQUIRED
    assert deliver_due(time_budget=5) == 1
    assert handshakes(receiver) == [] and len(receiver.received()) == 1


def test_the_setting_makes_every_subscription_verify(settings, receiver, make_subscription, make_delivery):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "REQUIRE_ENDPOINT_VERIFICATION": True}
    subscription = make_subscription(receiver.url())
    make_delivery(subscription)
    subscription.refresh_from_db()
    assert handshake.verification_state(subscription) == handshake.VerificationState.PENDING
    assert subscription.next_verification_at is not None  # scheduled when it was created
    assert deliver_due(time_budget=1) == 0 and receiver.received() == []


def test_a_lane_stops_when_the_url_changes_to_one_not_verified(make_subscription, make_delivery):
    with Receiver() as old, Receiver() as new:
        old.answer = echo_json
        subscription = make_subscription(old.url(), verify_endpoint=True)
        handshake.verify(subscription)
        make_delivery(subscription)
        make_delivery(subscription)
        [lane] = claim_lanes(1)
        # Changed behind the claim's back: the lane's copy says the old URL.
        Subscription.objects.filter(pk=subscription.pk).update(url=new.url())
        endpoints = Endpoints()
        endpoints.load([Subscription.objects.get(pk=subscription.pk)], time.monotonic())

        assert send_lane(lane, endpoints, time.monotonic() + 5) == []
        assert new.received() == [] and deliveries_received(old) == []


# --- the challenge and its answers --------------------------------------------------------------


def test_the_challenge_is_signed_like_a_delivery_and_carries_the_custom_headers(receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url(), verify_endpoint=True, headers={"X-Api-Key": "k-1"})
    handshake.verify(subscription)
    [request] = receiver.received()
    payload = StandardWebhook(current_secret(subscription)).verify(request.body, request.headers)
    assert payload["type"] == "webhook.verification"
    assert len(payload["data"]["challenge"]) >= 32
    assert request.headers["x-api-key"] == "k-1"
    assert request.headers["content-type"] == "application/json"


def test_the_challenge_carries_the_receiver_authentication(receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    configure_auth(subscription, method="bearer", token="rx-token-1")
    assert handshake.verify(subscription).passed
    [request] = receiver.received()
    assert request.headers["authorization"] == "Bearer rx-token-1"


def test_each_handshake_has_a_new_challenge(receiver, make_subscription):
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    handshake.verify(subscription)
    handshake.verify(subscription)
    first, second = (challenge_of(r) for r in receiver.received())
    assert first != second


@pytest.mark.parametrize(
    "answer",
    [
        lambda challenge, secret: json.dumps({"challenge": challenge}),
        lambda challenge, secret: challenge,
        lambda challenge, secret: f"  {challenge}\n",
        lambda challenge, secret: independent_hmac(secret, challenge),
        lambda challenge, secret: json.dumps({"challenge": independent_hmac(secret, challenge)}),
    ],
    ids=["json", "bare", "bare-with-space", "hmac", "hmac-in-json"],
)
def test_the_challenge_or_its_hmac_passes(receiver, make_subscription, answer):
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    secret = current_secret(subscription)
    receiver.answer = lambda request: Reply(200, answer(challenge_of(request), secret).encode())
    outcome = handshake.verify(subscription)
    subscription.refresh_from_db()
    assert outcome.passed
    assert handshake.verification_state(subscription) == handshake.VerificationState.VERIFIED
    assert subscription.verified_url == subscription.url and subscription.verified_at is not None
    assert subscription.next_verification_at is None and subscription.verification_error == ""


def test_the_hmac_under_a_secret_still_in_its_rotation_overlap_passes(receiver, make_subscription):
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    old_secret = current_secret(subscription)
    rotate_secret(subscription, 3600)
    receiver.answer = lambda request: Reply(200, independent_hmac(old_secret, challenge_of(request)).encode())
    assert handshake.verify(subscription).passed


def test_an_hmac_under_another_secret_fails(receiver, make_subscription):
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    other = "whsec_" + base64.b64encode(b"k" * 32).decode()
    receiver.answer = lambda request: Reply(200, independent_hmac(other, challenge_of(request)).encode())
    outcome = handshake.verify(subscription)
    assert not outcome.passed and "neither the challenge nor its HMAC" in outcome.error


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(200, b"ok"), "answered 'ok', which is neither the challenge nor its HMAC"),
        (Reply(204, b""), "HTTP 204 with an empty body"),
        (Reply(500, b"boom"), "HTTP 500."),
        (Reply(404, b"nope"), "HTTP 404."),
        (Reply(302, headers={"Location": "/elsewhere"}), "redirect to /elsewhere was not followed"),
        (Reply(200, b"late", delay=5), "No complete response within 0.5 s."),
    ],
    ids=["wrong-answer", "empty", "500", "404", "redirect", "timeout"],
)
def test_a_failed_handshake_is_recorded_and_retried_later(settings, receiver, make_subscription, reply, error):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "TIMEOUT": 0.5, "CONNECT_TIMEOUT": 0.5}
    receiver.script = [reply]
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    before = timezone.now()
    outcome = handshake.verify(subscription)
    after = timezone.now()
    subscription.refresh_from_db()

    assert not outcome.passed and error in outcome.error
    assert subscription.verification_error == outcome.error
    assert handshake.verification_state(subscription) == handshake.VerificationState.FAILED
    assert subscription.verification_failures == 1
    retry = subscription.next_verification_at
    assert before + timedelta(seconds=60) <= retry <= after + timedelta(seconds=60)
    assert handshake.due_count() == 0  # not before the retry


def test_the_retry_delay_doubles_up_to_an_hour(receiver, make_subscription):
    assert [handshake.retry_delay(n) for n in range(1, 9)] == [60, 120, 240, 480, 960, 1920, 3600, 3600]
    receiver.script = [Reply(503)]
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    handshake.verify(subscription)
    before = timezone.now()
    handshake.verify(subscription)
    subscription.refresh_from_db()
    assert subscription.verification_failures == 2
    assert subscription.next_verification_at >= before + timedelta(seconds=120)


def test_a_pass_after_failures_clears_them(receiver, make_subscription):
    receiver.script = [Reply(503)]
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    handshake.verify(subscription)
    receiver.answer = echo_json
    assert handshake.verify(subscription).passed
    subscription.refresh_from_db()
    assert subscription.verification_failures == 0 and subscription.verification_error == ""
    assert subscription.next_verification_at is None


def test_a_blocked_target_fails_the_handshake_without_a_request(settings, receiver, make_subscription):
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, "ALLOW_LOOPBACK": False}
    outcome = handshake.verify(subscription)
    assert not outcome.passed and "127.0.0.1" in outcome.error
    assert receiver.received() == []


# --- URL changes --------------------------------------------------------------------------------


def test_a_url_change_resets_the_verification(make_subscription, make_delivery):
    with Receiver() as old, Receiver() as new:
        old.answer = echo_json
        subscription = make_subscription(old.url(), verify_endpoint=True)
        handshake.verify(subscription)
        subscription.refresh_from_db()
        subscription.url = new.url()
        subscription.save()
        subscription.refresh_from_db()
        make_delivery(subscription)

        assert handshake.verification_state(subscription) == handshake.VerificationState.PENDING
        assert subscription.verified_url == "" and subscription.verified_at is None
        assert subscription.next_verification_at is not None and handshake.due_count() == 1
        assert deliver_due(time_budget=1) == 0 and new.received() == [] and deliveries_received(old) == []


def test_a_url_change_back_and_forth_needs_a_new_handshake(receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url("/a"), verify_endpoint=True)
    handshake.verify(subscription)
    subscription.url = receiver.url("/b")
    subscription.save()
    subscription.url = receiver.url("/a")
    subscription.save()
    subscription.refresh_from_db()
    assert handshake.verification_state(subscription) == handshake.VerificationState.PENDING


def test_saving_without_a_url_change_keeps_the_verification(receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    handshake.verify(subscription)
    subscription.refresh_from_db()
    subscription.description = "ERP"
    subscription.save()
    subscription.save(update_fields=["description"])
    subscription.refresh_from_db()
    assert handshake.verification_state(subscription) == handshake.VerificationState.VERIFIED


def test_a_url_changed_by_a_queryset_update_is_unverified_and_due(receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url("/a"), verify_endpoint=True)
    handshake.verify(subscription)
    Subscription.objects.filter(pk=subscription.pk).update(url=receiver.url("/b"))
    subscription.refresh_from_db()
    assert handshake.verification_state(subscription) == handshake.VerificationState.PENDING
    assert handshake.due_count() == 1


def test_an_answer_for_a_url_that_changed_meanwhile_is_not_recorded(make_subscription):
    subscription = make_subscription("http://127.0.0.1:9/a", verify_endpoint=True)
    challenged = Subscription.objects.get(pk=subscription.pk)  # as the handshake read it
    Subscription.objects.filter(pk=subscription.pk).update(url="http://127.0.0.1:9/b")
    outcome = handshake._record(challenged, "", timezone.now())
    subscription.refresh_from_db()
    assert outcome.passed and not outcome.recorded
    assert subscription.verified_url == "" and subscription.verified_at is None


def test_turning_verification_on_schedules_a_handshake(make_subscription):
    subscription = make_subscription()
    assert subscription.next_verification_at is None and handshake.due_count() == 0
    subscription.verify_endpoint = True
    subscription.save()
    subscription.refresh_from_db()
    assert subscription.next_verification_at is not None and handshake.due_count() == 1


def test_creation_enqueues_a_handshake_task_on_commit(monkeypatch, django_capture_on_commit_callbacks):
    pushed = []
    monkeypatch.setattr(handshake.broker, "enqueue_handshake", lambda: pushed.append(1))
    with django_capture_on_commit_callbacks(execute=True):
        Subscription.objects.create(url="http://127.0.0.1:9/a", event_types=["*"], verify_endpoint=True)
    with django_capture_on_commit_callbacks(execute=True):
        Subscription.objects.create(url="http://127.0.0.1:9/b", event_types=["*"])
    assert pushed == [1]


# --- the periodic run ---------------------------------------------------------------------------


def test_verify_due_runs_the_due_handshakes_only(receiver, make_subscription):
    receiver.answer = echo_json
    due = make_subscription(receiver.url("/due"), verify_endpoint=True)
    later = make_subscription(receiver.url("/later"), verify_endpoint=True)
    Subscription.objects.filter(pk=later.pk).update(next_verification_at=timezone.now() + timedelta(minutes=5))
    disabled = make_subscription(receiver.url("/disabled"), verify_endpoint=True, enabled=False)
    make_subscription(receiver.url("/exempt"))

    assert handshake.due_count() == 1
    assert tasks.verify_endpoints() == 1
    assert [r.path for r in receiver.received()] == ["/due"]
    due.refresh_from_db()
    disabled.refresh_from_db()
    assert handshake.verification_state(due) == handshake.VerificationState.VERIFIED
    assert handshake.verification_state(disabled) == handshake.VerificationState.PENDING
    assert tasks.verify_endpoints() == 0


def test_a_handshake_in_progress_is_leased(make_subscription):
    subscription = make_subscription(verify_endpoint=True)
    leased = handshake._claim_next(timezone.now())
    assert leased is not None and leased.pk == subscription.pk
    assert leased.next_verification_at > timezone.now()
    assert handshake._claim_next(timezone.now()) is None


def test_the_sweeper_enqueues_a_handshake_task_when_one_is_due(monkeypatch, make_subscription):
    pushed = []
    monkeypatch.setattr(tasks.broker, "enqueue_handshake", lambda: pushed.append(1))
    assert tasks.sweep()["handshakes"] == 0 and pushed == []
    make_subscription(verify_endpoint=True)
    assert tasks.sweep()["handshakes"] == 1 and pushed == [1]
    out = StringIO()
    call_command("webhooks_sweep", stdout=out)
    assert "1 endpoint handshake(s) due" in out.getvalue()


# --- API and admin ------------------------------------------------------------------------------


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice")


def test_the_api_shows_the_state_and_verifies_on_request(alice, receiver):
    api = client_for(alice)
    created = api.post(
        f"{API}/subscriptions/", {"url": receiver.url(), "event_types": ["*"], "verify_endpoint": True}, format="json"
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["verify_endpoint"] is True and body["verification_state"] == "pending"
    assert body["verified_at"] is None and body["next_verification_at"] is not None

    receiver.script = [Reply(200, b"nope")]
    failed = api.post(f"{API}/subscriptions/{body['id']}/verify/").json()
    assert failed["verification_state"] == "failed" and "nope" in failed["verification_error"]

    receiver.answer = echo_json
    verified = api.post(f"{API}/subscriptions/{body['id']}/verify/").json()
    assert verified["verification_state"] == "verified" and verified["verified_at"] is not None
    assert verified["verification_error"] == "" and verified["next_verification_at"] is None

    moved = api.patch(f"{API}/subscriptions/{body['id']}/", {"url": receiver.url("/new")}, format="json").json()
    assert moved["verification_state"] == "pending" and moved["verified_at"] is None


def test_the_api_verification_fields_are_read_only(alice, make_subscription):
    subscription = make_subscription(owner_id=str(alice.pk), verify_endpoint=True)
    response = client_for(alice).patch(
        f"{API}/subscriptions/{subscription.pk}/",
        {"verification_state": "verified", "verified_at": "2030-01-01T00:00:00Z", "verification_error": "x"},
        format="json",
    )
    assert response.status_code == 200
    subscription.refresh_from_db()
    assert subscription.verified_url == "" and subscription.verified_at is None


def test_the_openapi_document_describes_the_verify_action_and_the_state():
    with override_settings(SPECTACULAR_SETTINGS=API_ONLY):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/webhooks/subscriptions/{id}/verify/" in schema["paths"]
    state = schema["components"]["schemas"]["Subscription"]["properties"]["verification_state"]
    assert state["readOnly"] is True


def test_the_admin_change_page_shows_the_state_and_last_error(admin_client, receiver, make_subscription):
    receiver.script = [Reply(500)]
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    handshake.verify(subscription)
    html = admin_client.get(admin_url("subscription_change", subscription.pk)).content.decode()
    assert "handshake failed, retry scheduled" in html and "HTTP 500." in html
    assert 'name="verify_endpoint"' in html


def test_the_admin_action_runs_the_handshake_now(admin_client, receiver, make_subscription):
    receiver.answer = echo_json
    subscription = make_subscription(receiver.url(), verify_endpoint=True)
    response = action(admin_client, "verify_endpoints", [subscription])
    [message] = messages_of(response)
    assert "passed" in message
    subscription.refresh_from_db()
    assert handshake.verification_state(subscription) == handshake.VerificationState.VERIFIED


# --- end to end -----------------------------------------------------------------------------------

FAST = {"TIMEOUT": 2, "CONNECT_TIMEOUT": 1, "LEASE_SECONDS": 6, "TASK_TIME_BUDGET": 5, "RETRY_JITTER": 0}


def wait_until(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    value = condition()
    while not value and time.monotonic() < deadline:
        time.sleep(0.1)
        value = condition()
    return value


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_e2e_a_failing_endpoint_gets_nothing_and_a_passing_one_its_waiting_deliveries(
    settings, fresh_brokers, qcluster, receiver
):
    settings.DJANGO_WEBHOOKS = {**settings.DJANGO_WEBHOOKS, **FAST}
    cluster = qcluster(FAST)
    ready = {"yes": False}

    def answer(request):
        challenge = challenge_of(request)
        if challenge is None:
            return None
        if request.path == "/good" and ready["yes"]:
            return Reply(200, json.dumps({"challenge": challenge}).encode())
        return Reply(200, b"who are you?")

    receiver.answer = answer
    good = Subscription.objects.create(url=receiver.url("/good"), event_types=["*"], verify_endpoint=True)
    bad = Subscription.objects.create(url=receiver.url("/bad"), event_types=["*"], verify_endpoint=True)
    # Each creation enqueued a handshake; both fail (the good receiver is not ready yet).
    assert wait_until(lambda: Subscription.objects.exclude(verification_error="").count() == 2)
    events = [send_event("order.created", {"id": n, "number": f"A-{n}", "total": "1", "status": "new"}) for n in (1, 2)]
    assert wait_until(lambda: Delivery.objects.count() == 4)
    assert deliveries_received(receiver) == []

    ready["yes"] = True
    Subscription.objects.filter(pk=good.pk).update(next_verification_at=timezone.now())
    call_command("webhooks_sweep", stdout=StringIO())  # enqueues the handshake task, run by the cluster

    assert wait_until(lambda: len(deliveries_received(receiver)) >= 2)
    assert {r.path for r in deliveries_received(receiver)} == {"/good"}
    assert wait_until(lambda: Delivery.objects.filter(subscription=good, status=DeliveryStatus.SUCCEEDED).count() == 2)
    cluster.shut_down()
    drain()
    assert {r.path for r in deliveries_received(receiver)} == {"/good"}
    assert len(deliveries_received(receiver)) == 2
    bad_deliveries = Delivery.objects.filter(subscription=bad)
    assert sorted(bad_deliveries.values_list("event_id", flat=True)) == sorted(e.pk for e in events)
    assert set(bad_deliveries.values_list("status", flat=True)) == {DeliveryStatus.PENDING}
    assert not DeliveryAttempt.objects.filter(subscription=bad).exists()
    bad.refresh_from_db()
    assert handshake.verification_state(bad) == handshake.VerificationState.FAILED
    assert "who are you?" in bad.verification_error

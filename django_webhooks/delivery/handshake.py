"""The endpoint handshake: an endpoint proves it wants a subscription's traffic before it gets any.

Whoever can create a subscription can point it at someone else's URL. A subscription that must
verify (:func:`~django_webhooks.delivery.claiming.must_verify`: ``REQUIRE_ENDPOINT_VERIFICATION``
or its own ``verify_endpoint``) therefore sends nothing until its current URL answered a
``webhook.verification`` request: a POST signed and authenticated like every delivery
(``webhook-id``, ``webhook-timestamp``, ``webhook-signature``, the subscription's custom headers
and receiver authentication, :mod:`~django_webhooks.delivery.credentials`) whose body is
the Standard Webhooks envelope ::

    {"type": "webhook.verification", "timestamp": "2025-03-01T08:00:00Z", "data": {"challenge": "..."}}

The endpoint passes by answering 2xx within ``TIMEOUT`` with the challenge, as JSON
``{"challenge": "..."}`` or as the bare body, or with ``base64(HMAC-SHA256(key, challenge))``
where ``key`` is one of its current signing secrets (the bytes after ``whsec_``), which also
proves it holds the secret. Anything else (another answer, a non-2xx status, a timeout, a refused
target) is recorded as ``verification_error`` and the handshake is tried again after
:data:`RETRY_FIRST_SECONDS`, doubling up to :data:`RETRY_MAX_SECONDS`.

Until it passes, the subscription's deliveries wait ``pending``: the claim rule
(:func:`~django_webhooks.delivery.claiming.verified_or_exempt`, part of ``deliverable``) compares
``verified_url`` with the URL, so nothing is due for workers. A pass enqueues a delivery task.

A new subscription, and one whose URL changed, is (re)scheduled when it is saved
(:func:`note_url_change` / :func:`schedule_after_save`, connected in the app config), and a
handshake task is enqueued on commit; the sweeper enqueues one whenever a handshake is due (a
lost push, a retry, a URL changed by ``QuerySet.update()``). A run first moves the subscription's
``next_verification_at`` past its own end (a lease), so two workers never run the same handshake.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets as _secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..conf import webhooks_settings
from ..models import Delivery, DeliveryStatus, Subscription, new_message_id
from ..receiver_auth import load_credentials
from ..secret_store import signing_keys
from ..signing import secret_key, webhook_headers
from . import broker
from .claiming import must_verify, verified_or_exempt
from .credentials import send_authenticated
from .formats import dumps
from .headers import request_headers
from .targets import loggable_url
from .transport import TransportResult, get_transport

logger = logging.getLogger("django_webhooks.delivery.handshake")

#: The ``type`` of the challenge request's envelope.
VERIFICATION_EVENT_TYPE = "webhook.verification"
#: Seconds before the first retry of a failed handshake; each further failure doubles it ...
RETRY_FIRST_SECONDS = 60
#: ... up to this.
RETRY_MAX_SECONDS = 3600
#: Random bytes in a challenge.
CHALLENGE_BYTES = 24
#: The most of an answer quoted in ``verification_error``.
QUOTED_ANSWER_CHARS = 60


class VerificationState:
    """What :func:`verification_state` says about a subscription (admin, API)."""

    NOT_REQUIRED = "not_required"
    PENDING = "pending"
    FAILED = "failed"
    VERIFIED = "verified"

    CHOICES = [
        (NOT_REQUIRED, _("not required")),
        (PENDING, _("waiting for the handshake")),
        (FAILED, _("handshake failed, retry scheduled")),
        (VERIFIED, _("verified")),
    ]


def verification_state(subscription: Subscription) -> str:
    """``verified`` when its current URL passed, else ``not_required`` when it need not verify,
    ``failed`` when the last handshake of this URL failed, ``pending`` before the first one."""
    if subscription.verified_url and subscription.verified_url == subscription.url:
        return VerificationState.VERIFIED
    if not must_verify(subscription):
        return VerificationState.NOT_REQUIRED
    return VerificationState.FAILED if subscription.verification_error else VerificationState.PENDING


@dataclass(frozen=True)
class Outcome:
    """How one handshake went: ``error`` is empty when the endpoint passed."""

    url: str
    passed: bool
    error: str
    #: When the handshake runs again (after a failure); None after a pass.
    next_attempt_at: datetime | None
    #: False when the URL changed while the challenge was out: nothing was recorded.
    recorded: bool = True


def retry_delay(failures: int) -> float:
    """Seconds before the next handshake after ``failures`` failed ones in a row (1 or more)."""
    return float(min(RETRY_FIRST_SECONDS * 2 ** max(0, failures - 1), RETRY_MAX_SECONDS))


def new_challenge() -> str:
    return _secrets.token_urlsafe(CHALLENGE_BYTES)


def challenge_body(challenge: str, now: datetime) -> bytes:
    """The challenge request's body: compact JSON, like every body we send."""
    timestamp = now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    envelope = {"type": VERIFICATION_EVENT_TYPE, "timestamp": timestamp, "data": {"challenge": challenge}}
    return dumps(envelope).encode("utf-8")


def expected_hmac(secret: str, challenge: str) -> str:
    """``base64(HMAC-SHA256(key, challenge))``: the answer that also proves the endpoint holds ``secret``."""
    digest = hmac.new(secret_key(secret), challenge.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def answered_value(body: str) -> str:
    """What the endpoint answered: ``challenge`` of a JSON object, else the body without surrounding space."""
    text = body.strip()
    try:
        document: Any = json.loads(text)
    except ValueError:
        return text
    if isinstance(document, dict) and isinstance(document.get("challenge"), str):
        return document["challenge"].strip()
    return text


def answer_problem(result: TransportResult, challenge: str, secrets: list[str]) -> str:
    """Why ``result`` does not pass the handshake for ``challenge``; empty when it does."""
    if not result.succeeded:
        return result.error_message or f"HTTP {result.status}."
    answer = answered_value(result.body)
    candidates = [challenge, *(expected_hmac(secret, challenge) for secret in secrets)]
    # Every candidate is compared, in constant time each: the answer must not learn which came close.
    matches = [hmac.compare_digest(answer.encode("utf-8"), candidate.encode("utf-8")) for candidate in candidates]
    if any(matches):
        return ""
    if not answer:
        return f"HTTP {result.status} with an empty body; the challenge was expected."
    quoted = answer[:QUOTED_ANSWER_CHARS] + ("..." if len(answer) > QUOTED_ANSWER_CHARS else "")
    return f"HTTP {result.status} answered {quoted!r}, which is neither the challenge nor its HMAC."


def verify(subscription: Subscription) -> Outcome:
    """Run the handshake of ``subscription`` now, in the calling thread, and record how it went.

    Uses the subscription's URL, headers and secrets as they are in the database now. The result
    is recorded for the URL the challenge went to: if the URL changed meanwhile, nothing is (the
    change scheduled a handshake of its own). A pass of a subscription with waiting deliveries
    enqueues a delivery task. For the admin's and the API's "verify now" and for
    :func:`verify_due`; a failure here un-verifies the URL, like any failed handshake.
    """
    current = Subscription.objects.get(pk=subscription.pk)
    now = timezone.now()
    challenge = new_challenge()
    body = challenge_body(challenge, now)
    keys = signing_keys([current.pk], {current.pk: current.signature_scheme})[current.pk]
    secrets = [s.secret for s in keys.secrets if s.expires_at is None or s.expires_at > now]
    try:
        signed = webhook_headers(new_message_id(), int(now.timestamp()), body, keys.valid(now))
        headers = request_headers(current.headers, signed)
        credentials = load_credentials([current.pk]).get(current.pk)
        result, _sent = send_authenticated(get_transport(), current.url, body, headers, credentials)
        problem = answer_problem(result, challenge, secrets)
    except Exception as exc:  # recorded and retried like any failure, never lost in a worker's log only
        logger.exception("The endpoint handshake of subscription %s failed unexpectedly", current.pk)
        problem = f"Internal error: {type(exc).__name__}: {exc}"
    outcome = _record(current, problem, timezone.now())
    subscription.verified_url, subscription.verified_at = current.verified_url, current.verified_at
    subscription.verification_error = current.verification_error
    subscription.verification_failures = current.verification_failures
    subscription.next_verification_at = current.next_verification_at
    if outcome.passed:
        logger.info("Subscription %s verified its endpoint %s", current.pk, loggable_url(current.url))
    else:
        logger.info(
            "Subscription %s did not verify its endpoint %s: %s", current.pk, loggable_url(current.url), outcome.error
        )
    return outcome


def _record(subscription: Subscription, problem: str, now: datetime) -> Outcome:
    url = subscription.url
    if problem:
        failures = subscription.verification_failures + 1
        fields: dict[str, Any] = {
            "verified_url": "",
            "verified_at": None,
            "verification_error": problem[:255],
            "verification_failures": failures,
            "next_verification_at": now + timedelta(seconds=retry_delay(failures)),
        }
    else:
        fields = {
            "verified_url": url,
            "verified_at": now,
            "verification_error": "",
            "verification_failures": 0,
            "next_verification_at": None,
        }
    recorded = bool(Subscription.objects.filter(pk=subscription.pk, url=url).update(**fields))
    if recorded:
        for name, value in fields.items():
            setattr(subscription, name, value)
        if not problem and Delivery.objects.filter(subscription=subscription, status=DeliveryStatus.PENDING).exists():
            transaction.on_commit(lambda: broker.enqueue_delivery(1))
    return Outcome(url, not problem, problem[:255], fields["next_verification_at"], recorded)


def awaiting(now: datetime) -> QuerySet[Subscription]:
    """Enabled subscriptions whose handshake is due: they must verify, their URL has not passed,
    and no retry (or running handshake's lease) is scheduled after ``now``."""
    scheduled = Q(next_verification_at__isnull=True) | Q(next_verification_at__lte=now)
    return Subscription.objects.filter(scheduled, enabled=True).exclude(verified_or_exempt())


def due_count(limit: int = 1000) -> int:
    """How many handshakes are due now (bounded by ``limit``, to stay cheap)."""
    return awaiting(timezone.now()).values("pk")[:limit].count()


def _claim_next(now: datetime) -> Subscription | None:
    """Lease the handshake that has waited longest; None when none is due."""
    lease = now + timedelta(seconds=float(webhooks_settings.TIMEOUT) + float(webhooks_settings.LEASE_SECONDS))
    for candidate in awaiting(now).order_by(F("next_verification_at").asc(nulls_first=True), "pk")[:10]:
        taken = Subscription.objects.filter(
            pk=candidate.pk, url=candidate.url, next_verification_at=candidate.next_verification_at
        ).update(next_verification_at=lease)
        if taken:
            candidate.next_verification_at = lease
            return candidate
    return None


def verify_due(time_budget: float | None = None) -> int:
    """Run due handshakes one after another until none is due or ``time_budget`` seconds
    (default ``TASK_TIME_BUDGET``) are spent; return how many ran. Safe with any number of workers."""
    budget = float(webhooks_settings.TASK_TIME_BUDGET if time_budget is None else time_budget)
    started = time.monotonic()
    ran = 0
    while time.monotonic() - started < budget:
        subscription = _claim_next(timezone.now())
        if subscription is None:
            break
        verify(subscription)
        ran += 1
    return ran


# -- what a save changes --------------------------------------------------------------------------

#: Set by :func:`note_url_change` on an instance whose save gives it a new URL (or makes it).
_URL_CHANGED = "_webhooks_url_changed"


def note_url_change(sender: type[Subscription], instance: Subscription, raw: bool = False, **kwargs: Any) -> None:
    """``pre_save`` receiver: remember whether this save gives the subscription a new URL."""
    if raw:
        return
    update_fields = kwargs.get("update_fields")
    if update_fields is not None and "url" not in update_fields:
        return
    if instance.pk is None or instance._state.adding:
        changed = True
    else:
        stored = Subscription.objects.filter(pk=instance.pk).values_list("url", flat=True).first()
        changed = stored != instance.url
    setattr(instance, _URL_CHANGED, changed)


def schedule_after_save(
    sender: type[Subscription], instance: Subscription, created: bool, raw: bool = False, **kwargs: Any
) -> None:
    """``post_save`` receiver: a new URL forgets the old one's handshake; one that must verify
    is scheduled now, and a handshake task is enqueued when the transaction commits."""
    if raw:
        return
    changed = bool(instance.__dict__.pop(_URL_CHANGED, False))
    required = must_verify(instance)
    now = timezone.now()
    if changed:
        fields: dict[str, Any] = {
            "verified_url": "",
            "verified_at": None,
            "verification_error": "",
            "verification_failures": 0,
            "next_verification_at": now if required else None,
        }
        Subscription.objects.filter(pk=instance.pk).update(**fields)
        for name, value in fields.items():
            setattr(instance, name, value)
    elif required and verification_state(instance) != VerificationState.VERIFIED:
        # Just made to verify (verify_endpoint turned on): due now, unless a retry is scheduled.
        unscheduled = Subscription.objects.filter(pk=instance.pk, next_verification_at__isnull=True)
        if not unscheduled.update(next_verification_at=now):
            return
        instance.next_verification_at = now
    else:
        return
    if required:
        transaction.on_commit(broker.enqueue_handshake)

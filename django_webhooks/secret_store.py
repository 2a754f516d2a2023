"""Signing secrets of subscriptions: creation, rotation with overlap, and lookup for signing.

A subscription has one *current* secret (``expires_at`` empty) and, after rotations, up to
:data:`MAX_OLD_SECRETS` old ones that keep signing until their ``expires_at``, so receivers can
switch to the new secret without rejecting a single delivery (as Svix does). Secrets are stored
encrypted (:mod:`django_webhooks.crypto`); plaintext is only returned, never stored or logged.

Every change of a subscription's secrets adds a row, so the id of its newest row tells a worker
whether the secrets it signs with are still current (:mod:`django_webhooks.delivery.endpoints`). A change
returns only once no worker can start a request without the new secret (:data:`PROPAGATION_SECONDS`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto, signing
from .conf import webhooks_settings
from .exceptions import MissingSecret
from .models import Delivery, DeliveryStatus, Subscription, SubscriptionSecret

#: Old secrets kept signing next to the current one at most (Svix keeps 10).
MAX_OLD_SECRETS = 10
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: How old a worker's copy of a subscription's secrets (and URL, headers, enabled state) may be
#: when a request starts: the delivery engine re-reads them more often and its sender threads wait
#: for a fresher copy rather than start with an older one. A change of secrets waits this long
#: after its commit while the subscription has deliveries in flight, so every request that starts
#: after it returned, in any process, is signed with the new secret.
PROPAGATION_SECONDS = 0.5


class SigningSecret(NamedTuple):
    secret: str
    expires_at: datetime | None


class SigningKeys(NamedTuple):
    """A subscription's secrets, current first; ``version`` is the id of its newest secret row."""

    version: int
    secrets: tuple[SigningSecret, ...]

    def valid(self, now: datetime) -> list[str]:
        """The plaintext secrets that sign a request made at ``now``."""
        return [key.secret for key in self.secrets if key.expires_at is None or key.expires_at > now]


def validate_secret(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is ``whsec_`` + base64 of 24 to 64 bytes."""
    if not isinstance(value, str) or not value.startswith(signing.SECRET_PREFIX):
        raise ValidationError(
            _("A signing secret must start with 'whsec_' followed by base64 (e.g. from generate_secret())."),
            code="invalid_secret",
        )
    try:
        key = signing.decode_secret(value)
    except ValueError:
        raise ValidationError(
            _("The part of a signing secret after 'whsec_' must be standard base64."), code="invalid_secret"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValidationError(
            _("A signing secret must encode %(min)d to %(max)d random bytes; this one has %(length)d."),
            code="invalid_secret",
            params={"min": MIN_SECRET_BYTES, "max": MAX_SECRET_BYTES, "length": len(key)},
        )


def _locked(subscription_id: int) -> None:
    """Serialize secret changes of one subscription (a row lock on PostgreSQL)."""
    list(Subscription.objects.select_for_update().filter(pk=subscription_id).values_list("pk", flat=True))


def _wait_for_workers(subscription_id: int) -> None:
    """Return once every worker that may still sign for the subscription has re-read its secrets.

    Runs after the commit: a worker's copy is at most :data:`PROPAGATION_SECONDS` old when a
    request starts, so after that long every copy in use was read after the change. Only lanes
    hold copies, and a lane's deliveries are in flight from its claim to its last record.
    """
    if Delivery.objects.filter(subscription_id=subscription_id, status=DeliveryStatus.IN_FLIGHT).exists():
        time.sleep(PROPAGATION_SECONDS)


def _replace_current(subscription: Subscription, secret: str | None, overlap: timedelta) -> str:
    if secret is None:
        secret = signing.generate_secret()
    else:
        validate_secret(secret)
    now = timezone.now()
    retire_at = now + overlap
    with transaction.atomic():
        _locked(subscription.pk)
        transaction.on_commit(partial(_wait_for_workers, subscription.pk))
        secrets = SubscriptionSecret.objects.filter(subscription=subscription)
        secrets.filter(expires_at__isnull=True).update(expires_at=retire_at)
        secrets.filter(expires_at__gt=retire_at).update(expires_at=retire_at)
        secrets.filter(expires_at__lte=now).delete()
        surplus = list(
            secrets.filter(expires_at__isnull=False)
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)[MAX_OLD_SECRETS:]
        )
        if surplus:
            SubscriptionSecret.objects.filter(pk__in=surplus).delete()
        SubscriptionSecret.objects.create(
            subscription=subscription, encrypted=crypto.encrypt_secret(secret), created_at=now
        )
    return secret


def create_secret(subscription: Subscription, secret: str | None = None) -> str:
    """Store ``secret`` (validated) or a new one as the current secret and return it.

    Any previous secret stops signing at once; use :func:`rotate_secret` for an overlap.
    """
    return _replace_current(subscription, secret, timedelta(0))


def rotate_secret(subscription: Subscription, overlap_seconds: int | None = None, *, secret: str | None = None) -> str:
    """Make a new current secret (``secret``, validated, or a generated one) and return it.

    The previous secrets keep signing for ``overlap_seconds`` (default setting
    ``SECRET_ROTATION_OVERLAP``) but no longer than that, then are deleted by a later rotation.
    Every request that starts after the change committed and this returned carries a signature
    made with the new secret: while deliveries of the subscription are in flight, the commit is
    followed by a wait of :data:`PROPAGATION_SECONDS` (after the outermost transaction's commit,
    when called inside one).
    """
    if overlap_seconds is None:
        overlap_seconds = webhooks_settings.SECRET_ROTATION_OVERLAP
    if overlap_seconds < 0:
        raise ValueError("overlap_seconds may not be negative.")
    return _replace_current(subscription, secret, timedelta(seconds=overlap_seconds))


def create_first_secret(sender: type[Subscription], instance: Subscription, created: bool, **kwargs: Any) -> None:
    """``post_save`` receiver of :class:`Subscription`: a new subscription gets its first secret.

    Connected by the app's ``ready()``. So every subscription has a current secret from its
    creation on, whatever created it (the admin, the API, ``Subscription.objects.create()``), and
    reading a secret never writes. Rows loaded as fixtures (``raw``) and ``bulk_create`` send no
    signal; the delivery engine gives those a secret before it signs (:func:`signing_keys`).
    """
    if created and not kwargs.get("raw"):
        _new_current_row(instance.pk)


def _new_current_row(subscription_id: int) -> SubscriptionSecret:
    """A new generated current secret for the subscription (which has none)."""
    return SubscriptionSecret.objects.create(
        subscription_id=subscription_id, encrypted=crypto.encrypt_secret(signing.generate_secret())
    )


def _ensure_current(subscription_id: int) -> SubscriptionSecret:
    """The current secret's row, created if missing (a newer row: workers notice the change)."""
    with transaction.atomic():
        _locked(subscription_id)
        row = (
            SubscriptionSecret.objects.filter(subscription_id=subscription_id, expires_at__isnull=True)
            .order_by("-created_at", "-pk")
            .first()
        )
        return row or _new_current_row(subscription_id)


def _valid_rows(rows: Iterable[SubscriptionSecret], now: datetime) -> list[SubscriptionSecret]:
    """The rows that sign at ``now``: current first, then old ones newest first."""
    valid = [row for row in rows if row.expires_at is None or row.expires_at > now]
    valid.sort(key=lambda row: (row.expires_at is not None, -row.created_at.timestamp(), -(row.pk or 0)))
    return valid


def signing_secrets(subscription: Subscription, now: datetime | None = None) -> list[str]:
    """The plaintext secrets to sign with: current first, then old ones newest first.

    Reads ``subscription.secrets.all()``, so ``prefetch_related("secrets")`` makes this free of
    queries. Never writes: a subscription without secrets (see :func:`create_first_secret`)
    gives an empty list.
    """
    rows = _valid_rows(subscription.secrets.all(), now or timezone.now())
    return [crypto.decrypt_secret(row.encrypted) for row in rows]


def signing_keys(subscription_ids: Collection[int]) -> dict[int, SigningKeys]:
    """The secrets of several subscriptions with their expiry and version (one query, decrypted).

    For the delivery engine, which signs with them: :meth:`SigningKeys.valid` drops an old
    secret once its overlap ends. A subscription without a current secret (inserted by
    ``bulk_create`` or loaded as a fixture, so :func:`create_first_secret` did not run) gets one
    here, before any request to it is signed.
    """
    now = timezone.now()
    rows: dict[int, list[SubscriptionSecret]] = defaultdict(list)
    for row in SubscriptionSecret.objects.filter(subscription_id__in=list(subscription_ids)):
        rows[row.subscription_id].append(row)
    keys = {}
    for subscription_id in subscription_ids:
        valid = _valid_rows(rows[subscription_id], now)
        if not valid or valid[0].expires_at is not None:
            valid.insert(0, _ensure_current(subscription_id))
        version = max(row.pk for row in [*rows[subscription_id], *valid])
        secrets = tuple(SigningSecret(crypto.decrypt_secret(row.encrypted), row.expires_at) for row in valid)
        keys[subscription_id] = SigningKeys(version, secrets)
    return keys


def current_secret(subscription: Subscription) -> str:
    """The secret new signatures are made with; never writes.

    Raises :class:`~django_webhooks.exceptions.MissingSecret` when the subscription has no current
    secret (one made by ``bulk_create`` before the engine first sent to it): :func:`rotate_secret`
    or :func:`create_secret` gives it one.
    """
    rows = _valid_rows(subscription.secrets.all(), timezone.now())
    if not rows or rows[0].expires_at is not None:
        raise MissingSecret(f"Subscription {subscription.pk} has no current signing secret.")
    return crypto.decrypt_secret(rows[0].encrypted)


def reencrypt_secrets(batch_size: int = 500) -> int:
    """Re-encrypt every stored secret with the newest encryption key; return how many rows.

    Run it after putting a new key first in ``ENCRYPTION_KEYS`` (or changing ``SECRET_KEY``),
    then the old key can be removed from the setting.
    """
    updated = 0
    last_pk = 0
    while True:
        rows = list(
            SubscriptionSecret.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "encrypted")[:batch_size]
        )
        if not rows:
            return updated
        for row in rows:
            row.encrypted = crypto.reencrypt_secret(row.encrypted)
        SubscriptionSecret.objects.bulk_update(rows, ["encrypted"])
        updated += len(rows)
        last_pk = rows[-1].pk

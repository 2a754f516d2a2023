"""Signing secrets of subscriptions: creation, rotation with overlap, and lookup for signing.

A subscription has one *current* secret (``expires_at`` empty) and, after rotations, up to
:data:`MAX_OLD_SECRETS` old ones that keep signing until their ``expires_at``, so receivers can
switch to the new secret without rejecting a single delivery (as Svix does). Secrets are stored
encrypted (:mod:`django_webhooks.crypto`); plaintext is only returned, never stored or logged.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto, signing
from .conf import webhooks_settings
from .models import Subscription, SubscriptionSecret

#: Old secrets kept signing next to the current one at most (Svix keeps 10).
MAX_OLD_SECRETS = 10
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


def validate_secret(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is ``whsec_`` + base64 of 24 to 64 bytes."""
    if not isinstance(value, str) or not value.startswith(signing.SECRET_PREFIX):
        raise ValidationError(
            _("A signing secret must start with 'whsec_' followed by base64 (e.g. from generate_secret())."),
            code="invalid_secret",
        )
    encoded = value.removeprefix(signing.SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(
            _("The part of a signing secret after 'whsec_' must be standard base64."), code="invalid_secret"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ValidationError(
            _("A signing secret must encode %(min)d to %(max)d random bytes; this one has %(length)d."),
            code="invalid_secret",
            params={"min": MIN_SECRET_BYTES, "max": MAX_SECRET_BYTES, "length": len(key)},
        )


def _locked(subscription: Subscription) -> None:
    """Serialize secret changes of one subscription (a row lock on PostgreSQL)."""
    list(Subscription.objects.select_for_update().filter(pk=subscription.pk).values_list("pk", flat=True))


def _replace_current(subscription: Subscription, secret: str | None, overlap: timedelta) -> str:
    if secret is None:
        secret = signing.generate_secret()
    else:
        validate_secret(secret)
    now = timezone.now()
    retire_at = now + overlap
    with transaction.atomic():
        _locked(subscription)
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
    """
    if overlap_seconds is None:
        overlap_seconds = webhooks_settings.SECRET_ROTATION_OVERLAP
    if overlap_seconds < 0:
        raise ValueError("overlap_seconds may not be negative.")
    return _replace_current(subscription, secret, timedelta(seconds=overlap_seconds))


def _ensure_current(subscription: Subscription) -> str:
    with transaction.atomic():
        _locked(subscription)
        row = (
            SubscriptionSecret.objects.filter(subscription=subscription, expires_at__isnull=True)
            .order_by("-created_at", "-pk")
            .first()
        )
        if row is not None:
            return crypto.decrypt_secret(row.encrypted)
        secret = signing.generate_secret()
        SubscriptionSecret.objects.create(subscription=subscription, encrypted=crypto.encrypt_secret(secret))
        return secret


def signing_secrets(subscription: Subscription, now: datetime | None = None) -> list[str]:
    """The plaintext secrets to sign with: current first, then old ones newest first.

    Reads ``subscription.secrets.all()``, so ``prefetch_related("secrets")`` makes this free of
    queries. A subscription without a current secret gets one.
    """
    now = now or timezone.now()
    valid = [row for row in subscription.secrets.all() if row.expires_at is None or row.expires_at > now]
    valid.sort(key=lambda row: (row.expires_at is not None, -row.created_at.timestamp(), -(row.pk or 0)))
    secrets = [crypto.decrypt_secret(row.encrypted) for row in valid]
    if not valid or valid[0].expires_at is not None:
        secrets.insert(0, _ensure_current(subscription))
    return secrets


def current_secret(subscription: Subscription) -> str:
    """The secret new signatures are made with (created if missing)."""
    return signing_secrets(subscription)[0]


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

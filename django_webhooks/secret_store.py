"""Signing secrets and signing keys of subscriptions: creation, rotation with overlap, lookup for signing.

A subscription has one *current* secret (``expires_at`` empty) and, after rotations, up to
:data:`MAX_OLD_SECRETS` old ones that keep signing until their ``expires_at``, so receivers can
switch to the new secret without rejecting a single delivery (as Svix does). Secrets are stored
encrypted (:mod:`django_webhooks.crypto`); plaintext is only returned, never stored or logged.

Signing keys (ed25519 key pairs, ``v1a`` signatures, :class:`~django_webhooks.models.SubscriptionSigningKey`)
live the same life, through the same code: one current key, old ones signing until they expire,
the private key encrypted, the public key readable (:func:`public_signing_keys`). A subscription
has them once its ``signature_scheme`` signs ``v1a`` (:func:`create_first_secret`,
:func:`signing_keys`) or a key is rotated in ahead of the switch (:func:`rotate_signing_key`).

Every change of a subscription's secrets adds a row, so the id of its newest row tells a worker
whether the secrets it signs with are still current (:mod:`django_webhooks.delivery.endpoints`). A change
returns only once no worker can start a request without the new secret (:data:`PROPAGATION_SECONDS`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial
from typing import Any, NamedTuple, TypeVar

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto, signing
from .conf import webhooks_settings
from .exceptions import MissingSecret
from .models import (
    Delivery,
    DeliveryStatus,
    SignatureScheme,
    Subscription,
    SubscriptionSecret,
    SubscriptionSigningKey,
)

#: Either kind of row a subscription signs with; the two share every step of their lifecycle.
Credential = TypeVar("Credential", SubscriptionSecret, SubscriptionSigningKey)

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
    """A plaintext secret (``whsec_``) or private key (``whsk_``) and when it stops signing."""

    secret: str
    expires_at: datetime | None


class SigningKeys(NamedTuple):
    """What a subscription signs with, current first; ``version`` is the id of its newest secret row.

    ``private_keys`` (``whsk_``) are read only when ``scheme`` signs ``v1a``; ``key_version`` is
    then the id of the newest signing-key row (0 when they were not read).
    """

    version: int
    secrets: tuple[SigningSecret, ...]
    scheme: str = SignatureScheme.V1
    private_keys: tuple[SigningSecret, ...] = ()
    key_version: int = 0

    def valid(self, now: datetime) -> list[str]:
        """What signs a request made at ``now``, as the scheme says: the ``whsec_`` secrets (``v1``),
        the ``whsk_`` private keys (``v1a``), or the secrets then the keys (``both``)."""
        signing: list[SigningSecret] = []
        if self.scheme != SignatureScheme.V1A:
            signing.extend(self.secrets)
        if self.scheme != SignatureScheme.V1:
            signing.extend(self.private_keys)
        return [key.secret for key in signing if key.expires_at is None or key.expires_at > now]

    def is_stale(self, scheme: str, newest_secret: int | None, newest_key: int | None) -> bool:
        """Whether a subscription whose row now says ``scheme``, and whose newest secret and signing
        key rows have these ids, signs with something else than this (:mod:`~django_webhooks.delivery.endpoints`)."""
        if scheme != self.scheme or newest_secret != self.version:
            return True
        return scheme != SignatureScheme.V1 and (newest_key or 0) != self.key_version


class PublicSigningKey(NamedTuple):
    """A signing key as receivers see it: the public key, its ``kid``, and when it stops signing."""

    public_key: str
    kid: str
    created_at: datetime
    expires_at: datetime | None


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


def validate_private_key(value: str) -> None:
    """Raise ``ValidationError`` unless ``value`` is a ``whsk_`` ed25519 private key (:func:`signing.decode_private_key`)."""
    try:
        signing.decode_private_key(value)
    except ValueError as exc:
        raise ValidationError(str(exc), code="invalid_private_key") from None


def _replace_current_row(model: type[Credential], subscription_id: int, overlap: timedelta, **fields: str) -> None:
    """Make a new current row of ``model`` (a secret or a signing key) from ``fields``; the
    previous ones keep signing for ``overlap`` at most, and at most :data:`MAX_OLD_SECRETS` of them."""
    now = timezone.now()
    retire_at = now + overlap
    with transaction.atomic():
        _locked(subscription_id)
        transaction.on_commit(partial(_wait_for_workers, subscription_id))
        rows = model.objects.filter(subscription_id=subscription_id)
        rows.filter(expires_at__isnull=True).update(expires_at=retire_at)
        rows.filter(expires_at__gt=retire_at).update(expires_at=retire_at)
        rows.filter(expires_at__lte=now).delete()
        surplus = list(
            rows.filter(expires_at__isnull=False)
            .order_by("-created_at", "-pk")
            .values_list("pk", flat=True)[MAX_OLD_SECRETS:]
        )
        if surplus:
            model.objects.filter(pk__in=surplus).delete()
        model.objects.create(subscription_id=subscription_id, created_at=now, **fields)


def _replace_current(subscription: Subscription, secret: str | None, overlap: timedelta) -> str:
    if secret is None:
        secret = signing.generate_secret()
    else:
        validate_secret(secret)
    _replace_current_row(SubscriptionSecret, subscription.pk, overlap, encrypted=crypto.encrypt_secret(secret))
    return secret


def _overlap(overlap_seconds: int | None) -> timedelta:
    if overlap_seconds is None:
        overlap_seconds = webhooks_settings.SECRET_ROTATION_OVERLAP
    if overlap_seconds < 0:
        raise ValueError("overlap_seconds may not be negative.")
    return timedelta(seconds=overlap_seconds)


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
    return _replace_current(subscription, secret, _overlap(overlap_seconds))


def rotate_signing_key(
    subscription: Subscription, overlap_seconds: int | None = None, *, private_key: str | None = None
) -> str:
    """Make a new current ed25519 signing key (``private_key``, validated, or a generated one) and
    return its ``whpk_`` public key.

    Like :func:`rotate_secret`: the previous keys keep signing ``v1a`` for ``overlap_seconds``
    (default ``SECRET_ROTATION_OVERLAP``), and every request that starts after this returned is
    signed with the new key too. Works whatever the subscription's ``signature_scheme``, so a key
    can be published before the subscription switches to ``v1a``. ``private_key`` (``whsk_``)
    brings a key from elsewhere (another sender whose public key receivers already trust).
    """
    overlap = _overlap(overlap_seconds)
    if private_key is None:
        private_key, public_key = signing.generate_key_pair()
    else:
        validate_private_key(private_key)
        public_key = signing.public_key_of(private_key)
    _replace_current_row(
        SubscriptionSigningKey,
        subscription.pk,
        overlap,
        encrypted=crypto.encrypt_secret(private_key),
        public_key=public_key,
    )
    return public_key


def create_first_secret(sender: type[Subscription], instance: Subscription, created: bool, **kwargs: Any) -> None:
    """``post_save`` receiver of :class:`Subscription`: a new subscription gets its first secret,
    and one whose scheme signs ``v1a`` its first signing key.

    Connected by the app's ``ready()``. So every subscription has a current secret from its
    creation on, and a current signing key from the save that makes it sign ``v1a`` on, whatever
    saved it (the admin, the API, ``Subscription.objects.create()``), and reading a secret or a
    public key never writes. Rows loaded as fixtures (``raw``) and ``bulk_create`` or ``update()``
    send no signal; the delivery engine gives those a secret or key before it signs (:func:`signing_keys`).
    """
    if kwargs.get("raw"):
        return
    if created:
        _new_current_row(instance.pk)
    if instance.signature_scheme == SignatureScheme.V1:
        return
    if created:
        _new_current_key(instance.pk)
    elif not instance.signing_keys.filter(expires_at__isnull=True).exists():
        _ensure_current_key(instance.pk)


def _new_current_row(subscription_id: int) -> SubscriptionSecret:
    """A new generated current secret for the subscription (which has none)."""
    return SubscriptionSecret.objects.create(
        subscription_id=subscription_id, encrypted=crypto.encrypt_secret(signing.generate_secret())
    )


def _new_current_key(subscription_id: int) -> SubscriptionSigningKey:
    """A new generated current signing key for the subscription (which has none)."""
    private_key, public_key = signing.generate_key_pair()
    return SubscriptionSigningKey.objects.create(
        subscription_id=subscription_id, encrypted=crypto.encrypt_secret(private_key), public_key=public_key
    )


def _ensure_current_row(
    model: type[Credential], subscription_id: int, new_row: Callable[[int], Credential]
) -> Credential:
    """The current row of ``model``, made by ``new_row`` if missing (a newer row: workers notice the change)."""
    with transaction.atomic():
        _locked(subscription_id)
        row = (
            model.objects.filter(subscription_id=subscription_id, expires_at__isnull=True)
            .order_by("-created_at", "-pk")
            .first()
        )
        return row or new_row(subscription_id)


def _ensure_current(subscription_id: int) -> SubscriptionSecret:
    """The current secret's row, created if missing."""
    return _ensure_current_row(SubscriptionSecret, subscription_id, _new_current_row)


def _ensure_current_key(subscription_id: int) -> SubscriptionSigningKey:
    """The current signing key's row, created if missing."""
    return _ensure_current_row(SubscriptionSigningKey, subscription_id, _new_current_key)


def _valid_rows(rows: Iterable[Credential], now: datetime) -> list[Credential]:
    """The rows that sign at ``now``: current first, then old ones newest first."""
    valid = [row for row in rows if row.expires_at is None or row.expires_at > now]
    valid.sort(key=lambda row: (row.expires_at is not None, -row.created_at.timestamp(), -(row.pk or 0)))
    return valid


def _signing_rows(
    rows: list[Credential], now: datetime, ensure: Callable[[], Credential]
) -> tuple[int, list[Credential]]:
    """The rows that sign at ``now``, with a current one made by ``ensure`` if there is none, and
    the id of the newest row (the version workers compare)."""
    valid: list[Credential] = _valid_rows(rows, now)
    if not valid or valid[0].expires_at is not None:
        valid.insert(0, ensure())
    return max(row.pk for row in [*rows, *valid]), valid


def _decrypted(rows: Iterable[Credential]) -> tuple[SigningSecret, ...]:
    return tuple(SigningSecret(crypto.decrypt_secret(row.encrypted), row.expires_at) for row in rows)


def signing_secrets(subscription: Subscription, now: datetime | None = None) -> list[str]:
    """The plaintext secrets to sign with: current first, then old ones newest first.

    Reads ``subscription.secrets.all()``, so ``prefetch_related("secrets")`` makes this free of
    queries. Never writes: a subscription without secrets (see :func:`create_first_secret`)
    gives an empty list.
    """
    rows = _valid_rows(subscription.secrets.all(), now or timezone.now())
    return [crypto.decrypt_secret(row.encrypted) for row in rows]


def signing_keys(subscription_ids: Collection[int], schemes: Mapping[int, str] | None = None) -> dict[int, SigningKeys]:
    """What several subscriptions sign with, with expiry and versions (decrypted).

    ``schemes`` maps each subscription to its ``signature_scheme``; one left out signs ``v1``
    only. One query for the secrets, and one for the signing keys of the subscriptions whose
    scheme signs ``v1a``. For the delivery engine, which signs with them: :meth:`SigningKeys.valid`
    drops an old secret or key once its overlap ends. A subscription without a current secret,
    or whose scheme signs ``v1a`` without a current key (inserted by ``bulk_create``, changed by
    ``update()`` or loaded as a fixture, so :func:`create_first_secret` did not run), gets one
    here, before any request to it is signed.
    """
    now = timezone.now()
    schemes = schemes or {}
    secret_rows: dict[int, list[SubscriptionSecret]] = defaultdict(list)
    for row in SubscriptionSecret.objects.filter(subscription_id__in=list(subscription_ids)):
        secret_rows[row.subscription_id].append(row)
    asymmetric = [sid for sid in subscription_ids if schemes.get(sid, SignatureScheme.V1) != SignatureScheme.V1]
    key_rows: dict[int, list[SubscriptionSigningKey]] = defaultdict(list)
    if asymmetric:
        for key_row in SubscriptionSigningKey.objects.filter(subscription_id__in=asymmetric):
            key_rows[key_row.subscription_id].append(key_row)
    keys = {}
    for subscription_id in subscription_ids:
        version, secrets = _signing_rows(secret_rows[subscription_id], now, partial(_ensure_current, subscription_id))
        scheme = schemes.get(subscription_id, SignatureScheme.V1)
        if scheme == SignatureScheme.V1:
            keys[subscription_id] = SigningKeys(version, _decrypted(secrets), scheme)
            continue
        key_version, private_keys = _signing_rows(
            key_rows[subscription_id], now, partial(_ensure_current_key, subscription_id)
        )
        keys[subscription_id] = SigningKeys(version, _decrypted(secrets), scheme, _decrypted(private_keys), key_version)
    return keys


def public_signing_keys(subscription: Subscription, now: datetime | None = None) -> list[PublicSigningKey]:
    """The public keys that verify the subscription's ``v1a`` signatures at ``now``: current
    first, then old ones still signing, newest first. Never decrypts, never writes; reads
    ``subscription.signing_keys.all()``, so ``prefetch_related("signing_keys")`` makes it free of queries."""
    return [
        PublicSigningKey(row.public_key, signing.key_id(row.public_key), row.created_at, row.expires_at)
        for row in _valid_rows(subscription.signing_keys.all(), now or timezone.now())
    ]


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
    """Re-encrypt every stored secret, private signing key and receiver credential (:mod:`~django_webhooks.receiver_auth`)
    with the newest encryption key; return how many rows.

    Run it after putting a new key first in ``ENCRYPTION_KEYS`` (or changing ``SECRET_KEY``),
    then the old key can be removed from the setting.
    """
    from .receiver_auth import reencrypt_receiver_secrets

    rows = _reencrypt(SubscriptionSecret, batch_size) + _reencrypt(SubscriptionSigningKey, batch_size)
    return rows + reencrypt_receiver_secrets()


def _reencrypt(model: type[Credential], batch_size: int) -> int:
    updated = 0
    last_pk = 0
    while True:
        rows = list(model.objects.filter(pk__gt=last_pk).order_by("pk").only("pk", "encrypted")[:batch_size])
        if not rows:
            return updated
        for row in rows:
            row.encrypted = crypto.reencrypt_secret(row.encrypted)
        model.objects.bulk_update(rows, ["encrypted"])
        updated += len(rows)
        last_pk = rows[-1].pk

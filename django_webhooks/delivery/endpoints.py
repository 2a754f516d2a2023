"""What a sender thread knows about the subscription it sends to, kept current while it sends.

Sender threads never touch the database, yet each request must go to the subscription's URL with
its headers and signatures as they are *now*: a receiver that switched to the new secret right
after a rotation must not get a request signed with the old secrets only, and a disabled
subscription must stop receiving. So the delivery task's main thread reads them when it claims a
lane and re-reads the subscriptions of its lanes every :data:`REFRESH_SECONDS` (one indexed
query; the secrets and signing keys again only when the signature scheme, or the newest secret
or signing-key row, changed), and a sender starts a request
only with a copy read less than :data:`~django_webhooks.secret_store.PROPAGATION_SECONDS` ago,
waiting for a fresher one otherwise. A change of secrets returns only after that long (see
:func:`~django_webhooks.secret_store.rotate_secret`), so every request that starts after it
returned is signed with the new secret, whichever process made the change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from django.db.models import OuterRef, Subquery

from ..models import Subscription, SubscriptionSecret, SubscriptionSigningKey
from ..receiver_auth import Credentials, load_credentials
from ..secret_store import PROPAGATION_SECONDS, SigningKeys, signing_keys

#: How often a delivery task re-reads the subscriptions its lanes send to (well under
#: ``PROPAGATION_SECONDS``, so senders seldom wait for a fresh copy).
REFRESH_SECONDS = PROPAGATION_SECONDS / 2


@dataclass(frozen=True)
class Endpoint:
    """A subscription as a request needs it, read from the database at ``read_at``."""

    subscription_id: int
    url: str
    #: The subscription's custom headers (:func:`~django_webhooks.delivery.headers.request_headers` merges them).
    headers: dict[str, object]
    enabled: bool
    #: What signs its requests: secrets, signing keys, or both, as its ``signature_scheme`` says.
    keys: SigningKeys
    #: ``time.monotonic()`` when the oldest query this copy comes from started.
    read_at: float
    #: Send the request span's W3C ``traceparent`` (:mod:`django_webhooks.tracing`).
    send_traceparent: bool = False
    #: How requests prove who sends them (:mod:`django_webhooks.receiver_auth`); None: no authentication.
    credentials: Credentials | None = None


class Endpoints:
    """The endpoints of one delivery task's lanes: written by its main thread, read by senders."""

    def __init__(self) -> None:
        self._current: dict[int, Endpoint] = {}
        self._changed = threading.Condition()

    def load(self, subscriptions: Iterable[Subscription], read_at: float) -> None:
        """Take ``subscriptions`` as read by a query that started at ``read_at``; read their secrets now."""
        subscriptions = list(subscriptions)
        keys = signing_keys([s.pk for s in subscriptions], {s.pk: s.signature_scheme for s in subscriptions})
        credentials = load_credentials([s.pk for s in subscriptions])
        self._publish(
            Endpoint(
                s.pk, s.url, s.headers or {}, s.enabled, keys[s.pk], read_at, s.send_traceparent, credentials.get(s.pk)
            )
            for s in subscriptions
        )

    def refresh(self, subscription_ids: Collection[int]) -> None:
        """Re-read these subscriptions (one query; secrets, keys and credentials only where they changed)."""
        if not subscription_ids:
            return
        read_at = time.monotonic()
        newest_secret = SubscriptionSecret.objects.filter(subscription=OuterRef("pk")).order_by("-pk").values("pk")[:1]
        newest_key = SubscriptionSigningKey.objects.filter(subscription=OuterRef("pk")).order_by("-pk").values("pk")[:1]
        rows = {
            row[0]: row
            for row in Subscription.objects.filter(pk__in=list(subscription_ids))
            .annotate(newest_secret=Subquery(newest_secret), newest_key=Subquery(newest_key))
            .values_list(
                "pk",
                "url",
                "headers",
                "enabled",
                "newest_secret",
                "send_traceparent",
                "signature_scheme",
                "newest_key",
                "receiver_auth__updated_at",
            )
        }
        with self._changed:
            known = {sid: self._current.get(sid) for sid in subscription_ids}
        stale: dict[int, str] = {}  # subscription id: its signature scheme
        changed_auth: list[int] = []
        for sid, (_, _, _, _, newest_secret_id, _, scheme, newest_key_id, auth_version) in rows.items():
            endpoint = known.get(sid)
            if endpoint is None or endpoint.keys.is_stale(scheme, newest_secret_id, newest_key_id):
                stale[sid] = scheme
            if endpoint is None or auth_version != (endpoint.credentials.version if endpoint.credentials else None):
                changed_auth.append(sid)
        keys = signing_keys(list(stale), stale) if stale else {}
        credentials = load_credentials(changed_auth)
        fresh = []
        for sid, endpoint in known.items():
            row = rows.get(sid)
            if row is not None:
                _, url, headers, enabled, _, send_traceparent, _, _, _ = row
                signing = keys[sid] if endpoint is None or sid in keys else endpoint.keys
                auth = credentials.get(sid) if endpoint is None or sid in changed_auth else endpoint.credentials
                fresh.append(Endpoint(sid, url, headers or {}, enabled, signing, read_at, send_traceparent, auth))
            elif endpoint is not None:  # deleted: its lanes stop
                fresh.append(replace(endpoint, enabled=False, read_at=read_at))
        self._publish(fresh)

    def _publish(self, endpoints: Iterable[Endpoint]) -> None:
        with self._changed:
            for endpoint in endpoints:
                known = self._current.get(endpoint.subscription_id)
                if known is None or known.read_at <= endpoint.read_at:
                    self._current[endpoint.subscription_id] = endpoint
            self._changed.notify_all()

    def current(self, subscription_id: int, until: float) -> Endpoint | None:
        """A copy read less than ``PROPAGATION_SECONDS`` ago, waiting for one until ``until``
        (monotonic); None if none came in time."""
        with self._changed:
            while True:
                endpoint = self._current.get(subscription_id)
                now = time.monotonic()
                if endpoint is not None and now - endpoint.read_at < PROPAGATION_SECONDS:
                    return endpoint
                if now >= until:
                    return None
                self._changed.wait(min(until - now, PROPAGATION_SECONDS))

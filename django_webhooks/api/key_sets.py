"""The public keys of a subscription's ``v1a`` signatures, as a key set document: for its owner and for everyone.

The document is a JSON Web Key Set (RFC 7517), ``{"keys": [JWK, ...]}``: each JWK an Ed25519
public key (RFC 8037: ``kty`` ``OKP``, ``crv`` ``Ed25519``, ``x``) with ``kid`` (its RFC 7638
thumbprint), ``alg`` ``EdDSA``, ``use`` ``sig``, and three members of ours: ``public_key`` (the
``whpk_`` string Standard Webhooks libraries take), ``created`` and ``expires`` (ISO 8601; null
for the current key). It lists the keys that sign now, current first: after a rotation the
previous key stays listed until its overlap ends.

:class:`KeySetView` serves it without credentials at ``key-sets/<key_set_id>/``, addressed by the
subscription's random ``key_set_id`` (the URL says nothing of the subscription's id or owner), with
``Cache-Control: public, max-age=`` :data:`KEY_SET_MAX_AGE`. Receivers fetch it, cache it, and pass
it to :func:`django_webhooks.receiving.verify`. The owner reads the same keys, and the URL, through
the ``signing-keys`` action of the subscriptions API (:mod:`.views`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from .. import secret_store, signing
from ..models import Subscription
from .schema import DETAIL_ERROR, WebhooksAutoSchema
from .serializers import MAX_ROTATION_OVERLAP, WebhooksSerializer
from .throttling import WebhooksRateThrottle

#: Seconds receivers (and caches between) may keep a key set. Well under the rotation overlap
#: (``SECRET_ROTATION_OVERLAP``, a day by default): a receiver whose copy predates a rotation
#: still verifies with the previous key, which keeps signing until the overlap ends.
KEY_SET_MAX_AGE = 300
#: What a ``key_set_id`` (:func:`~django_webhooks.models.new_key_set_id`) is made of.
KEY_SET_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
#: The URL namespace of the API (``app_name`` of :mod:`.urls`).
API_NAMESPACE = "django_webhooks_api"


def key_set(subscription: Subscription, now: datetime | None = None) -> dict[str, Any]:
    """The key set of ``subscription`` (see the module's docstring), with ``created`` and ``expires`` as datetimes."""
    return {
        "keys": [
            {
                **signing.public_jwk(key.public_key),
                "public_key": key.public_key,
                "created": key.created_at,
                "expires": key.expires_at,
            }
            for key in secret_store.public_signing_keys(subscription, now)
        ]
    }


def key_set_url(subscription: Subscription, request: HttpRequest | None = None) -> str:
    """Where :class:`KeySetView` publishes the subscription's key set: absolute with a ``request``."""
    match = getattr(request, "resolver_match", None)
    path = reverse(
        f"{API_NAMESPACE}:key-set",
        kwargs={"key_set_id": subscription.key_set_id},
        current_app=match.namespace if match is not None else None,
    )
    return request.build_absolute_uri(path) if request is not None else path


class SigningKeySerializer(WebhooksSerializer):
    """One public key of a key set: a JWK, with the ``whpk_`` form and its lifetime."""

    kty = serializers.CharField(help_text=_('The key type: "OKP" (RFC 8037).'))
    crv = serializers.CharField(help_text=_('The curve: "Ed25519".'))
    x = serializers.CharField(help_text=_("The 32-byte public key, base64url without padding."))
    kid = serializers.CharField(help_text=_("The key's id: its JWK thumbprint (RFC 7638, SHA-256, base64url)."))
    alg = serializers.CharField(help_text=_('The signature algorithm: "EdDSA" (ed25519).'))
    use = serializers.CharField(help_text=_('What the key is for: "sig", verifying signatures.'))
    public_key = serializers.CharField(
        help_text=_("The same public key as Standard Webhooks writes it: whpk_ + base64 of its 32 bytes.")
    )
    created = serializers.DateTimeField(help_text=_("When the key was made."))
    expires = serializers.DateTimeField(
        allow_null=True,
        help_text=_("When the key stops signing (it was rotated out); null for the current key."),
    )


class KeySetSerializer(WebhooksSerializer):
    keys = SigningKeySerializer(
        many=True,
        help_text=_(
            "The keys that verify v1a signatures now, current first; a v1a signature is valid when it "
            "verifies with any of them. Empty while the subscription has no signing key."
        ),
    )


class SigningKeysSerializer(KeySetSerializer):
    """A subscription's key set as its owner reads it: the keys and where they are published."""

    key_set_url = serializers.URLField(
        help_text=_(
            "Where the same key set is published without credentials, for your receivers to fetch and cache "
            "(Cache-Control max-age)."
        )
    )


class RotateSigningKeySerializer(WebhooksSerializer):
    overlap_seconds = serializers.IntegerField(
        min_value=0,
        max_value=MAX_ROTATION_OVERLAP,
        required=False,
        help_text=_("Seconds the previous key keeps signing next to the new one; default is the server's."),
    )


class RotatedSigningKeySerializer(WebhooksSerializer):
    public_key = serializers.CharField(help_text=_("The new current public key (whpk_...)."))
    kid = serializers.CharField(help_text=_("The new key's id, as in the key set."))
    previous_keys_expire_at = serializers.DateTimeField(
        help_text=_("Until then requests carry a v1a signature with the previous key too.")
    )


class KeySetSchema(WebhooksAutoSchema):
    """No request body and no credentials: a key set answers 200, or 404 and 429 only."""

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        return {code: response for code, response in responses.items() if code not in ("400", "401", "403")}


class KeySetView(APIView):
    """The public key set of one subscription; anyone with its URL may read it (public keys only)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [WebhooksRateThrottle]
    renderer_classes = [JSONRenderer]
    schema = KeySetSchema()

    @extend_schema(
        operation_id="key_set",
        summary="Get a subscription's public key set",
        description="The public keys that verify the v1a (ed25519) signatures of one subscription, as a JSON "
        "Web Key Set, current first. No credentials needed: the URL's key set id is unguessable and tells "
        "nothing about the subscription or its owner. Cache it for the Cache-Control max-age; fetch it again "
        "when a signature verifies with none of its keys.",
        auth=[],
        parameters=[
            OpenApiParameter(
                "key_set_id",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The key set's id, from the key_set_url of the subscription's signing-keys.",
            ),
            OpenApiParameter(
                "Cache-Control",
                OpenApiTypes.STR,
                OpenApiParameter.HEADER,
                response=[200],
                description=f"public, max-age={KEY_SET_MAX_AGE}: how long the key set may be cached.",
            ),
        ],
        responses={
            200: OpenApiResponse(KeySetSerializer, description="The key set."),
            404: OpenApiResponse(DETAIL_ERROR, description="No key set has this id."),
        },
    )
    def get(self, request: Request, key_set_id: str) -> Response:
        # Any path segment reaches the view; what no key set id looks like (a NUL, which PostgreSQL
        # refuses in a query) is the same JSON 404 as an unknown id.
        subscription = None
        if KEY_SET_ID_RE.fullmatch(key_set_id):
            subscription = Subscription.objects.filter(key_set_id=key_set_id).prefetch_related("signing_keys").first()
        if subscription is None:
            raise NotFound(_("No key set has this id."))
        response = Response(KeySetSerializer(key_set(subscription)).data)
        patch_cache_control(response, public=True, max_age=KEY_SET_MAX_AGE)
        return response

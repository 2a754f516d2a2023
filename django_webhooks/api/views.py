"""API views. Every queryset is scoped to the requesting owner; another owner's ids are 404s."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.db.models import Prefetch, QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, AuthenticationFailed, NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import BaseSerializer
from rest_framework.views import APIView

from .. import catalog, secret_store, signing
from ..conf import webhooks_settings
from ..delivery import handshake, health, operations
from ..exceptions import MissingSecret
from ..models import Delivery, DeliveryAttempt, Event, Subscription
from . import key_sets, serializers
from .filters import DeliveryFilter, EventFilter, filter_queryset
from .pagination import WebhooksCursorPagination
from .parsers import RequestBodyTooLarge, WebhooksJSONParser
from .permissions import ALL_OWNERS_PARAM, IsWebhookOwner, request_owner_id, sees_all_owners
from .schema import DETAIL_ERROR, WebhooksAutoSchema
from .stats import MAX_BUCKETS, StatsQuerySerializer, StatsSerializer, subscription_stats
from .throttling import WebhooksActionsRateThrottle, WebhooksRateThrottle

ALL_OWNERS = OpenApiParameter(
    ALL_OWNERS_PARAM,
    OpenApiTypes.BOOL,
    description="Staff only, when the server allows it (API_STAFF_SEES_ALL): every owner's objects.",
    required=False,
)
#: Request examples that work as they are in Swagger UI's "Try it out" (with any catalog that has
#: an event type of its own; the alert pattern always matches the built-in webhook.endpoint.* types).
SUBSCRIPTION_EXAMPLES = [
    OpenApiExample(
        "Every event type",
        value={"url": "https://hooks.example.com/webhooks", "event_types": ["*"], "description": "ERP"},
        request_only=True,
    ),
    OpenApiExample(
        "Alerts about your other endpoints",
        value={"url": "https://hooks.example.com/alerts", "event_types": ["webhook.endpoint.*"]},
        request_only=True,
    ),
]


class DeliveryNotPending(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "not_pending"
    default_detail = _("Only a pending delivery can be cancelled.")


class WebhooksAPIView(APIView):
    """What every view shares: host authentication, owner permission, throttles, JSON only
    (within the limits of :mod:`.parsers`), and the requesting owner (:attr:`owner_id`)."""

    permission_classes = [IsWebhookOwner]
    throttle_classes = [WebhooksRateThrottle, WebhooksActionsRateThrottle]
    parser_classes = [WebhooksJSONParser]
    schema = WebhooksAutoSchema()
    #: Actions under the stricter ``webhooks_actions`` throttle scope.
    strict_throttle_actions: tuple[str, ...] = ()
    #: Path from the view's model to ``owner_id``.
    owner_field = "owner_id"
    #: Any path segment reaches the view, so a malformed id is a JSON 404 like an unknown one.
    lookup_value_regex = r"[^/]+"

    def handle_exception(self, exc: Exception) -> Response:
        # Django refuses a body over DATA_UPLOAD_MAX_MEMORY_SIZE with an HTML 400; the API says 413, in JSON.
        if isinstance(exc, RequestDataTooBig):
            exc = RequestBodyTooLarge()
        return super().handle_exception(exc)

    def perform_authentication(self, request: Request) -> None:
        """Credentials the host's authentication cannot even look up (a NUL character, which
        PostgreSQL refuses in a query) are a 401, not a database error."""
        try:
            request.user  # noqa: B018 (authenticates)
        except (DatabaseError, ValueError) as exc:
            raise AuthenticationFailed(_("Malformed credentials.")) from exc

    @cached_property
    def owner_id(self) -> str | None:
        """The requesting owner's key from ``OWNER_RESOLVER``, resolved once per request (first read
        by :class:`~.permissions.IsWebhookOwner`); None when unauthenticated or not linked to an owner."""
        user = getattr(self.request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return request_owner_id(self.request)

    def scoped(self, queryset: QuerySet) -> QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return queryset.none()
        if sees_all_owners(self.request):
            return queryset
        if self.owner_id is None:
            return queryset.none()
        return queryset.filter(**{self.owner_field: self.owner_id})


@extend_schema_view(
    list=extend_schema(summary="List event types", description="The catalog of event types you can subscribe to."),
    retrieve=extend_schema(
        summary="Get an event type",
        parameters=[
            OpenApiParameter(
                "name",
                OpenApiTypes.STR,
                OpenApiParameter.PATH,
                description="The event type's name, e.g. order.created.",
            )
        ],
    ),
)
class EventTypeViewSet(WebhooksAPIView, viewsets.ViewSet):
    """The event catalog: ``EVENT_TYPES`` declared in settings merged with ``EventType`` rows.

    A row wins over a declaration of the same name; archived types are left out.
    """

    serializer_class = serializers.EventTypeSerializer
    lookup_field = "name"

    def active_event_types(self) -> list[dict[str, Any]]:
        return [
            {"name": name, **spec, "description": spec["description"] or ""}
            for name, spec in catalog.published_event_types().items()
        ]

    @extend_schema(responses=serializers.EventTypeSerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(serializers.EventTypeSerializer(self.active_event_types(), many=True).data)

    @extend_schema(responses=serializers.EventTypeSerializer)
    def retrieve(self, request: Request, name: str | None = None) -> Response:
        for event_type in self.active_event_types():
            if event_type["name"] == name:
                return Response(serializers.EventTypeSerializer(event_type).data)
        raise Http404


@extend_schema_view(
    list=extend_schema(summary="List subscriptions", parameters=[ALL_OWNERS]),
    create=extend_schema(summary="Create a subscription", examples=SUBSCRIPTION_EXAMPLES),
    retrieve=extend_schema(summary="Get a subscription", parameters=[ALL_OWNERS]),
    update=extend_schema(summary="Replace a subscription", examples=SUBSCRIPTION_EXAMPLES),
    partial_update=extend_schema(
        summary="Change a subscription",
        examples=[
            OpenApiExample("Change the description", value={"description": "ERP, production"}, request_only=True)
        ],
    ),
    destroy=extend_schema(summary="Delete a subscription and its delivery log"),
)
class SubscriptionViewSet(WebhooksAPIView, viewsets.ModelViewSet):
    """Your webhook endpoints, their secrets, test events, recovery and health."""

    serializer_class = serializers.SubscriptionSerializer
    pagination_class = WebhooksCursorPagination
    strict_throttle_actions = ("test", "verify", "recover", "rotate_secret", "rotate_signing_key")

    def get_queryset(self) -> QuerySet:
        return self.scoped(Subscription.objects.all())

    def perform_create(self, serializer: BaseSerializer) -> None:
        serializer.save(owner_id=self.owner_id)

    def subscription_response(self, subscription: Subscription) -> Response:
        subscription.refresh_from_db()
        return Response(self.get_serializer(subscription).data)

    @extend_schema(summary="Enable a subscription", request=None, responses=serializers.SubscriptionSerializer)
    @action(detail=True, methods=["post"])
    def enable(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        operations.enable(subscription)
        return self.subscription_response(subscription)

    @extend_schema(
        summary="Disable a subscription",
        request=serializers.DisableSerializer,
        responses=serializers.SubscriptionSerializer,
        examples=[OpenApiExample("Maintenance", value={"reason": "Maintenance until Monday."}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def disable(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        payload = serializers.DisableSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        operations.disable(subscription, payload.validated_data.get("reason") or "Disabled through the API.")
        return self.subscription_response(subscription)

    @extend_schema(summary="Get the signing secret", responses=serializers.SecretSerializer)
    @action(detail=True, methods=["get"])
    def secret(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        try:
            secret = secret_store.current_secret(subscription)
        except MissingSecret:
            raise NotFound(_("This subscription has no signing secret yet; rotate-secret creates one."))
        return Response({"secret": secret})

    @extend_schema(
        summary="Rotate the signing secret",
        description="Makes a new current secret; the previous ones keep signing for the overlap period.",
        request=serializers.RotateSecretSerializer,
        responses=serializers.RotatedSecretSerializer,
        examples=[OpenApiExample("One hour of overlap", value={"overlap_seconds": 3600}, request_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        payload = serializers.RotateSecretSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        overlap = payload.validated_data.get("overlap_seconds")
        if overlap is None:
            overlap = webhooks_settings.SECRET_ROTATION_OVERLAP
        secret = secret_store.rotate_secret(subscription, overlap, secret=payload.validated_data.get("secret"))
        expires_at = timezone.now() + timedelta(seconds=overlap)
        return Response(
            serializers.RotatedSecretSerializer({"secret": secret, "previous_secrets_expire_at": expires_at}).data
        )

    @extend_schema(
        summary="Get the v1a public keys",
        description="The public keys that verify this subscription's v1a (ed25519) signatures, current first, "
        "and the URL where they are published without credentials for your receivers. Empty until the "
        "subscription signs v1a (signature_scheme v1a or both) or a key is rotated in.",
        responses=key_sets.SigningKeysSerializer,
    )
    @action(detail=True, methods=["get"], url_path="signing-keys")
    def signing_keys(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        document = {**key_sets.key_set(subscription), "key_set_url": key_sets.key_set_url(subscription, request)}
        return Response(key_sets.SigningKeysSerializer(document).data)

    @extend_schema(
        summary="Rotate the v1a signing key",
        description="Makes a new current ed25519 signing key; the previous ones keep signing for the overlap "
        "period. Works whatever the signature scheme, so receivers can trust the key before the "
        "subscription switches to v1a. The private key is never returned.",
        request=key_sets.RotateSigningKeySerializer,
        responses=key_sets.RotatedSigningKeySerializer,
        examples=[OpenApiExample("One hour of overlap", value={"overlap_seconds": 3600}, request_only=True)],
    )
    @action(detail=True, methods=["post"], url_path="rotate-signing-key")
    def rotate_signing_key(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        payload = key_sets.RotateSigningKeySerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        overlap = payload.validated_data.get("overlap_seconds")
        if overlap is None:
            overlap = webhooks_settings.SECRET_ROTATION_OVERLAP
        public_key = secret_store.rotate_signing_key(subscription, overlap)
        rotated = {
            "public_key": public_key,
            "kid": signing.key_id(public_key),
            "previous_keys_expire_at": timezone.now() + timedelta(seconds=overlap),
        }
        return Response(key_sets.RotatedSigningKeySerializer(rotated).data)

    @extend_schema(
        summary="Send a test event",
        description="Sends one request to the endpoint now and returns the attempt with its response.",
        request=serializers.TestEventSerializer,
        responses=serializers.DeliveryAttemptSerializer,
        examples=[
            OpenApiExample("The test event", value={"event_type": operations.TEST_EVENT_TYPE}, request_only=True)
        ],
    )
    @action(detail=True, methods=["post"])
    def test(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        payload = serializers.TestEventSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        attempt = operations.send_test_event(
            subscription, payload.validated_data["event_type"], payload.validated_data.get("data")
        )
        return Response(serializers.DeliveryAttemptSerializer(attempt).data)

    @extend_schema(
        summary="Run the endpoint handshake now",
        description="Sends a webhook.verification challenge to the endpoint now and returns the subscription "
        "with the outcome (verification_state, verification_error). A pass releases the deliveries that "
        "waited; a failure holds them and schedules a retry.",
        request=None,
        responses=serializers.SubscriptionSerializer,
    )
    @action(detail=True, methods=["post"])
    def verify(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        handshake.verify(subscription)
        return self.subscription_response(subscription)

    @extend_schema(
        summary="Recover failed deliveries",
        description="Queues again every failed or exhausted delivery of this subscription since a time.",
        request=serializers.RecoverSerializer,
        responses={202: serializers.RecoverResultSerializer},
        examples=[OpenApiExample("Since a past time", value={"since": "2025-03-01T06:00:00Z"}, request_only=True)],
    )
    @action(detail=True, methods=["post"])
    def recover(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        payload = serializers.RecoverSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        count = operations.recover(subscription, payload.validated_data["since"])
        return Response({"recovered": count}, status=status.HTTP_202_ACCEPTED)

    @extend_schema(summary="Endpoint health", responses=serializers.HealthSerializer)
    @action(detail=True, methods=["get"])
    def health(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        return Response(serializers.HealthSerializer(health.subscription_health(subscription)).data)

    @extend_schema(
        summary="Endpoint statistics",
        description="Attempts, successes, failures by class, success rate and latency percentiles of this "
        "subscription per hour or day (UTC), oldest first with empty buckets included, and for the whole "
        f"window; at most {MAX_BUCKETS} buckets. Counted as attempts are recorded (kept after the "
        "attempts are pruned); percentiles are estimated from a latency histogram.",
        parameters=[StatsQuerySerializer, ALL_OWNERS],
        responses=StatsSerializer,
    )
    @action(detail=True, methods=["get"])
    def stats(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        window = query.validated_data
        figures = subscription_stats(subscription, window["since"], window["until"], window["bucket"])
        return Response(StatsSerializer(figures).data)


@extend_schema_view(
    list=extend_schema(summary="List events", parameters=[EventFilter, ALL_OWNERS]),
    retrieve=extend_schema(summary="Get an event", parameters=[ALL_OWNERS]),
)
class EventViewSet(WebhooksAPIView, viewsets.ReadOnlyModelViewSet):
    """Events recorded for you, newest first."""

    serializer_class = serializers.EventSerializer
    pagination_class = WebhooksCursorPagination

    def get_queryset(self) -> QuerySet:
        queryset = self.scoped(Event.objects.all())
        if self.action == "list" and not getattr(self, "swagger_fake_view", False):
            queryset = filter_queryset(queryset, self.request, EventFilter, event_type_field="event_type")
        return queryset


@extend_schema_view(
    list=extend_schema(summary="List deliveries", parameters=[DeliveryFilter, ALL_OWNERS]),
    retrieve=extend_schema(summary="Get a delivery with all its attempts", parameters=[ALL_OWNERS]),
)
class DeliveryViewSet(WebhooksAPIView, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Your delivery log: one delivery per event and subscription, with every attempt."""

    serializer_class = serializers.DeliverySerializer
    pagination_class = WebhooksCursorPagination
    owner_field = "subscription__owner_id"
    strict_throttle_actions = ("resend",)

    def get_queryset(self) -> QuerySet:
        queryset = (
            self.scoped(Delivery.objects.all())
            .select_related("event")
            .prefetch_related(
                Prefetch("delivery_attempts", queryset=DeliveryAttempt.objects.order_by("attempt_number", "id"))
            )
        )
        if self.action == "list" and not getattr(self, "swagger_fake_view", False):
            queryset = filter_queryset(queryset, self.request, DeliveryFilter, event_type_field="event__event_type")
        return queryset

    @extend_schema(
        summary="Send a delivery again",
        description="Queues the delivery for a new attempt now, whatever its status.",
        request=None,
        responses={202: serializers.DeliverySerializer},
    )
    @action(detail=True, methods=["post"])
    def resend(self, request: Request, pk: str | None = None) -> Response:
        delivery = operations.resend(self.get_object())
        delivery = self.get_queryset().get(pk=delivery.pk)
        return Response(self.get_serializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(
        summary="Cancel a pending delivery",
        description="A pending delivery (waiting for its first attempt or for a retry) becomes cancelled: "
        "it is not sent again unless you resend it. A delivery in flight, or one that is already final "
        "(succeeded, failed, exhausted, cancelled), is not changed: 409.",
        request=None,
        responses={
            200: serializers.DeliverySerializer,
            409: OpenApiResponse(DETAIL_ERROR, description="The delivery is not pending (in flight, or final)."),
        },
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        delivery = self.get_object()
        if not operations.cancel(delivery):
            raise DeliveryNotPending(
                _("Only a pending delivery can be cancelled; this one is %(status)s.") % {"status": delivery.status}
            )
        delivery = self.get_queryset().get(pk=delivery.pk)
        return Response(self.get_serializer(delivery).data)

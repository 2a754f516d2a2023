"""URLs of the API; include them under a prefix of your choice (docs/api.md uses api/webhooks/)."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import SimpleRouter

from . import key_sets, views

app_name = "django_webhooks_api"

router = SimpleRouter()
router.register("event-types", views.EventTypeViewSet, basename="event-type")
router.register("subscriptions", views.SubscriptionViewSet, basename="subscription")
router.register("events", views.EventViewSet, basename="event")
router.register("deliveries", views.DeliveryViewSet, basename="delivery")

urlpatterns = [
    *router.urls,
    # Public, without credentials: the v1a public keys of one subscription (key_sets.py).
    path("key-sets/<str:key_set_id>/", key_sets.KeySetView.as_view(), name="key-set"),
]

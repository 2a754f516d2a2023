"""The portal's URLs: ``path("webhooks/", include("django_webhooks.portal.urls"))``."""

from __future__ import annotations

from django.urls import path

from . import deliveries, endpoints, entry, event_types, operations, signing_secret

app_name = "django_webhooks_portal"

urlpatterns = [
    path("", endpoints.endpoint_list, name="endpoints"),
    path("endpoints/new/", endpoints.endpoint_create, name="endpoint-create"),
    path("endpoints/<int:pk>/", endpoints.endpoint_detail, name="endpoint"),
    path("endpoints/<int:pk>/edit/", endpoints.endpoint_edit, name="endpoint-edit"),
    path("endpoints/<int:pk>/delete/", endpoints.endpoint_delete, name="endpoint-delete"),
    path("endpoints/<int:pk>/enable/", endpoints.endpoint_enable, name="endpoint-enable"),
    path("endpoints/<int:pk>/disable/", endpoints.endpoint_disable, name="endpoint-disable"),
    path("endpoints/<int:pk>/secret/", signing_secret.secret, name="secret"),
    path("endpoints/<int:pk>/secret/rotate/", signing_secret.rotate_secret, name="secret-rotate"),
    path("endpoints/<int:pk>/test/", operations.send_test_event, name="endpoint-test"),
    path("endpoints/<int:pk>/recover/", operations.recover, name="endpoint-recover"),
    path("deliveries/", deliveries.delivery_log, name="deliveries"),
    path("deliveries/<int:pk>/", deliveries.delivery_detail, name="delivery"),
    path("deliveries/<int:pk>/resend/", operations.resend, name="delivery-resend"),
    path("event-types/", event_types.event_catalog, name="event-types"),
    path("enter/<str:token>/", entry.enter, name="enter"),
    path("leave/", entry.leave, name="leave"),
]

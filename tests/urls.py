"""The suite's URLs: the admin, the webhooks API where a project mounts it, and its schema pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import views


@extend_schema(exclude=True)
class WebhooksSchemaView(SpectacularAPIView):
    """The OpenAPI document of the webhooks API, without an entry for itself."""


urlpatterns = [
    path("admin/", admin.site.urls),
    # Log-in pages for the browsable API and Swagger UI.
    path("api-auth/", include("rest_framework.urls")),
    path("api/webhooks/", include("django_webhooks.api.urls")),
    path("metrics/", include("django_webhooks.metrics.urls")),
    path("webhooks/", include("django_webhooks.portal.urls")),
    path("api/schema/", WebhooksSchemaView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # Async views calling asend_event and acreate (tests/capture/test_async.py).
    path("async/events/", views.record_event),
    path("async/orders/", views.create_order),
]

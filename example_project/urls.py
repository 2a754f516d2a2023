from django.contrib import admin
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from example_project.shop import views as shop_views


@extend_schema(exclude=True)
class WebhooksSchemaView(SpectacularAPIView):
    """The OpenAPI document of the webhooks API, without an entry for itself."""


urlpatterns = [
    path("admin/", admin.site.urls),
    # Log-in pages for the browsable API and Swagger UI (the demo customer is not staff).
    path("api-auth/", include("rest_framework.urls")),
    path("api/webhooks/", include("django_webhooks.api.urls")),
    path("api/schema/", WebhooksSchemaView.as_view(), name="schema"),
    path("api/schema/swagger-ui/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/schema/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    # The customer's page in the shop, and their webhooks portal.
    path("shop/", shop_views.account, name="account"),
    path("shop/webhooks-link/", shop_views.webhooks_link, name="webhooks-link"),
    path("webhooks/", include("django_webhooks.portal.urls")),
    # Prometheus metrics, for staff or a bearer token (METRICS_TOKEN); docs/monitoring.md.
    path("metrics/", include("django_webhooks.metrics.urls")),
    # The demo's local receiver: verifies and records what the shop's webhooks deliver.
    path("receiver/", shop_views.received, name="received-webhooks"),
    path("receiver/<slug:name>/", shop_views.receive, name="receiver"),
]

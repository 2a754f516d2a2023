"""``path("metrics/", include("django_webhooks.metrics.urls"))``: the Prometheus metrics view."""

from django.urls import path

from .views import metrics

app_name = "django_webhooks_metrics"

urlpatterns = [path("", metrics, name="metrics")]

"""REST API for customers: event catalog, subscriptions and their secrets, events, deliveries.

Mount it with ``path("api/webhooks/", include("django_webhooks.api.urls"))``. See docs/api.md.
"""

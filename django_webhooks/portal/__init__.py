"""The customer portal: server-rendered pages where an owner manages their own webhooks.

Mount it with ``path("webhooks/", include("django_webhooks.portal.urls"))``. Customers come in
through the host's login (``OWNER_RESOLVER``) or a signed link from
:func:`django_webhooks.portal.links.portal_link`. See docs/portal.md.
"""

from __future__ import annotations

from django.urls import path
from oauth2_provider import views as oauth_views

from . import views

urlpatterns = [
    path("o/token/", views.counted(oauth_views.TokenView.as_view()), name="token"),
    path("hook", views.hook),
    path("stats", views.stats),
    path("revoke", views.revoke),
]

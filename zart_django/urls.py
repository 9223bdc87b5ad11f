"""The manager's inbox. Include it with ``path("approvals/", include("zart_django.urls"))``."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from .approvals import views

app_name = "zart_django"

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("history/", views.history, name="history"),
    path("requests/<str:execution_id>/", views.detail, name="detail"),
    path("requests/<str:execution_id>/decide/", views.decide_view, name="decide"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="zart_django/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="zart_django:login"), name="logout"),
]

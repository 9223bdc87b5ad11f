"""The manager's inbox, with its login page. Include it with
``path("approvals/", include("zart_django.approvals.urls"))``; its URL names keep the
``zart_django`` namespace (``zart_django:inbox``, ``zart_django:login``)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from zart_django.converters import ExecutionIdConverter

from . import views

app_name = "zart_django"
register_converter(ExecutionIdConverter, "zart_execution_id")

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("history/", views.history, name="history"),
    path("requests/<zart_execution_id:execution_id>/", views.detail, name="detail"),
    path("requests/<zart_execution_id:execution_id>/decide/", views.decide_view, name="decide"),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="zart_django/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="zart_django:login"), name="logout"),
]

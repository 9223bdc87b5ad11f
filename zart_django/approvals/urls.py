"""The manager's inbox, with its login page. Include it with
``path("approvals/", include("zart_django.approvals.urls"))``; its URL names are in the
``zart_approvals`` namespace (``zart_approvals:inbox``, ``zart_approvals:login``)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path, register_converter

from zart_django.converters import ExecutionIdConverter

from . import views

app_name = "zart_approvals"
register_converter(ExecutionIdConverter, "zart_execution_id")

urlpatterns = [
    path("", views.inbox, name="inbox"),
    path("history/", views.history, name="history"),
    path("history.csv", views.history_csv, name="history_csv"),
    path("requests/<zart_execution_id:execution_id>/", views.detail, name="detail"),
    path("requests/<zart_execution_id:execution_id>/decide/", views.decide_view, name="decide"),
    path(
        "requests/<zart_execution_id:execution_id>/reassign/",
        views.reassign_view,
        name="reassign",
    ),
    path(
        "login/",
        auth_views.LoginView.as_view(template_name="zart_approvals/login.html"),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(next_page="zart_approvals:login"), name="logout"),
]

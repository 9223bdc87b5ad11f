"""API routes: ``executions/``, ``executions/{id}/cancel/``, ``.../retry/``, ``.../rerun/``,
``.../restart/``, ``executions/{id}/events/{name}/``; the routes installed apps add through
``zart_django.api.extensions`` (``approvals/`` and ``approvals/{execution_id}/decide/`` with
``zart_django.approvals``); and the API's own OpenAPI ``schema/`` and ``docs/`` (see
``zart_django.api.schema``), so one ``include`` serves them all."""

from __future__ import annotations

from django.urls import path
from django.utils.module_loading import import_string
from rest_framework.routers import DefaultRouter

from . import extensions
from .schema import ApiRoot, docs_view, schema_view
from .views import ExecutionViewSet

app_name = "zart_api"

router = DefaultRouter()
router.APIRootView = ApiRoot
router.register("executions", ExecutionViewSet, basename="execution")
for route in extensions.routes.values():
    router.register(route.prefix, import_string(route.viewset), basename=route.basename)

urlpatterns = [
    path("schema/", schema_view(router.urls), name="schema"),
    path("docs/", docs_view(router.urls), name="docs"),
    *router.urls,
]

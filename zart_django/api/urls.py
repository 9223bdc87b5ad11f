"""API routes: ``executions/``, ``executions/{id}/cancel/``, ``.../retry/``, ``.../rerun/``,
``.../restart/``, ``executions/{id}/events/{name}/``,
``approvals/``, ``approvals/{execution_id}/decide/``; and the API's own OpenAPI ``schema/`` and
``docs/`` (see ``zart_django.api.schema``), so one ``include`` serves them all."""

from __future__ import annotations

from django.urls import path
from rest_framework.routers import DefaultRouter

from .schema import ApiRoot, docs_view, schema_view
from .views import ApprovalViewSet, ExecutionViewSet

app_name = "zart_api"

router = DefaultRouter()
router.APIRootView = ApiRoot
router.register("executions", ExecutionViewSet, basename="execution")
router.register("approvals", ApprovalViewSet, basename="approval")

urlpatterns = [
    path("schema/", schema_view(router.urls), name="schema"),
    path("docs/", docs_view(router.urls), name="docs"),
    *router.urls,
]

"""API routes: ``executions/``, ``executions/{id}/cancel/``, ``.../retry/``, ``.../rerun/``,
``.../restart/``, ``executions/{id}/events/{name}/``,
``approvals/``, ``approvals/{execution_id}/decide/``."""

from __future__ import annotations

from rest_framework.routers import DefaultRouter

from .views import ApprovalViewSet, ExecutionViewSet

app_name = "zart_api"

router = DefaultRouter()
router.register("executions", ExecutionViewSet, basename="execution")
router.register("approvals", ApprovalViewSet, basename="approval")

urlpatterns = router.urls

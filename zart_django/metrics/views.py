"""The Prometheus endpoint: ``path("metrics/", include("zart_django.metrics.urls"))``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from django.http import HttpResponse
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.views import APIView

from . import AVAILABLE

PERMISSION = "zart_django.view_execution"


class MayReadMetrics(BasePermission):
    """Active staff users, and users with ``zart_django.view_execution``."""

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(
            user.is_authenticated
            and user.is_active
            and (user.is_staff or user.has_perm(PERMISSION))
        )


class PlainTextRenderer(BaseRenderer):
    media_type = "text/plain"
    format = "txt"

    def render(self, data: Any, accepted_media_type: Any = None, renderer_context: Any = None):
        return str(data.get("detail", data) if isinstance(data, dict) else data).encode()


class MetricsView(APIView):
    """Prometheus text: the database's gauges and the counters of this process, or of every
    process when ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus_client's multiprocess mode).
    Authenticated as the project's REST framework authenticates (a token, a session)."""

    permission_classes = [MayReadMetrics]
    renderer_classes = [PlainTextRenderer]

    def get(self, request: Request) -> HttpResponse:
        if not AVAILABLE:
            return HttpResponse(
                'prometheus_client is not installed: pip install "zart-django[metrics]"\n',
                status=501,
                content_type="text/plain",
            )
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return HttpResponse(generate_latest(_Sources()), content_type=CONTENT_TYPE_LATEST)


class _Sources:
    """What one scrape reads: the database, and the counters of this process or of all of them."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client import multiprocess

        from . import REGISTRY
        from .database import DatabaseCollector

        yield from DatabaseCollector().collect()
        shared = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        counters = multiprocess.MultiProcessCollector(None, path=shared) if shared else REGISTRY
        yield from counters.collect()

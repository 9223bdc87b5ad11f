"""Include with ``path("metrics/", include("zart_django.metrics.urls"))``."""

from __future__ import annotations

from django.urls import path

from .views import MetricsView

app_name = "zart_metrics"

urlpatterns = [path("", MetricsView.as_view(), name="metrics")]

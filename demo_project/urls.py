"""The demo's URLs: the admin, the approvals inbox, the REST API (which serves its own OpenAPI
schema at ``api/schema/`` and docs at ``api/docs/``), and the Prometheus metrics (staff, or
``zart_django.view_execution``)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/approvals/", permanent=False)),
    path("admin/", admin.site.urls),
    path("approvals/", include("zart_django.approvals.urls")),
    path("api/", include("zart_django.api.urls")),
    path("metrics/", include("zart_django.metrics.urls")),
]

"""The demo's URLs: the admin, the approvals inbox, the REST API and its OpenAPI docs, and the
Prometheus metrics (staff, or ``zart_django.view_execution``)."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", RedirectView.as_view(url="/approvals/", permanent=False)),
    path("admin/", admin.site.urls),
    path("approvals/", include("zart_django.urls")),
    path("api/", include("zart_django.api.urls")),
    path("metrics/", include("zart_django.metrics.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

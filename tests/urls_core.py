"""The URLs of a project with only the engine: the admin and the REST API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("zart_django.api.urls")),
]

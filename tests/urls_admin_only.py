"""A project that includes neither the inbox nor the API (the URL checks have nothing to say)."""

from django.contrib import admin
from django.urls import path

urlpatterns = [path("admin/", admin.site.urls)]

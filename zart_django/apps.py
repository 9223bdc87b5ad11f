from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ZartConfig(AppConfig):
    name = "zart_django"
    verbose_name = "Durable executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, conf  # noqa: F401  (registers the system checks)

        autodiscover_modules("workflows")
        for module in conf.get("WORKFLOW_MODULES"):
            import_module(module)

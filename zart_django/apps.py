from __future__ import annotations

from importlib import import_module

from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ZartConfig(AppConfig):
    name = "zart_django"
    verbose_name = "Durable executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, conf, dispatch  # noqa: F401  (registers the system checks)
        from .approvals.waiting import reserve_decision_events

        reserve_decision_events()

        autodiscover_modules("workflows")
        for module in conf.get("WORKFLOW_MODULES"):
            import_module(module)
        if dispatch.enabled():
            from django.db.models.signals import post_migrate
            from django_q.signals import post_spawn

            post_migrate.connect(dispatch.ensure_schedule, sender=self)
            post_spawn.connect(dispatch.enqueue, dispatch_uid="zart_django.dispatch")

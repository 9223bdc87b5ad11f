from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import autodiscover_modules

from . import conf


class ZartConfig(AppConfig):
    name = "zart_django"
    verbose_name = "Durable executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .children import reserve_child_events

        reserve_child_events()

        autodiscover_modules("workflows")
        for module in conf.get("WORKFLOW_MODULES"):
            import_module(module)
        register_wakers()
        setting_changed.connect(_settings_changed, dispatch_uid="zart_django.wakers")
        if dispatches_to_django_q():
            from django.db.models.signals import post_migrate
            from django_q.signals import post_spawn

            from . import dispatch

            post_migrate.connect(dispatch.ensure_schedule, sender=self)
            post_spawn.connect(dispatch.enqueue, dispatch_uid="zart_django.dispatch")


def dispatches_to_django_q() -> bool:
    """Whether ``ZART["DISPATCH"]`` hands due executions to a django-q2 cluster."""
    return conf.get("DISPATCH") == "django_q"


def register_wakers() -> None:
    """Fill the waker registry for this project: the push wake-ups of its database (``NOTIFY``
    on PostgreSQL, sockets beside an SQLite file), an enqueue with ``DISPATCH = "django_q"``;
    only the modules of the wakers used are imported."""
    from . import backends, wakeups

    wakeups.clear()
    known = conf.database() in settings.DATABASES  # an unknown alias is E009's to report
    if known and backends.current().listens:
        from .notify import notify

        wakeups.register(notify, push=True)
    if dispatches_to_django_q():
        from .dispatch import on_due

        wakeups.register(on_due)


def _settings_changed(*, setting: str, **kwargs: Any) -> None:
    """Keep the wakers in step with ``ZART`` when a test overrides it."""
    if setting == "ZART":
        register_wakers()

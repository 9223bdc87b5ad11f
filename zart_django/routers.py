"""A database router for projects that keep the engine's tables in a database of their own."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from . import conf

APP_LABELS = frozenset({"zart_django", "zart_approvals"})
"""The engine's app and the approvals app, whose requests reference executions."""


class ZartRouter:
    """Sends the reads, writes and migrations of the engine's models (app label ``zart_django``)
    and the approvals' (``zart_approvals``) to ``ZART["DATABASE"]``, and no other app's; add it to
    ``DATABASE_ROUTERS``."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return conf.database() if model._meta.app_label in APP_LABELS else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return self.db_for_read(model, **hints)

    def allow_relation(self, obj1: Model, obj2: Model, **hints: Any) -> bool | None:
        labels = {obj1._meta.app_label, obj2._meta.app_label}
        return True if labels <= APP_LABELS else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db == conf.database() if app_label in APP_LABELS else None

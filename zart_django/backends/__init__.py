"""The store's vendor-specific SQL: one backend object per database vendor, chosen once per
connection alias (``ZART["DATABASE"]``), as Django has ``connection.ops``.

``base.Backend`` builds the statements every vendor shares; ``postgresql`` and ``sqlite`` hold
what differs (the claim's locking, the checkpoint, the database clock, transactions, wake-ups).
Only ``zart_django.store`` calls a backend: it stays the one module that writes.
"""

from __future__ import annotations

import functools

from django.db import connections

from .. import conf
from .base import Backend


def current() -> Backend:
    """The backend of the connection the engine uses (``ZART["DATABASE"]``)."""
    return for_alias(conf.database())


@functools.cache
def for_alias(alias: str) -> Backend:
    """The backend of connection ``alias``, built on first use and kept."""
    vendor = connections[alias].vendor
    if vendor == "postgresql":
        from .postgresql import PostgreSQLBackend

        return PostgreSQLBackend(alias)
    if vendor == "sqlite":
        from .sqlite import SQLiteBackend

        return SQLiteBackend(alias)
    raise NotImplementedError(f"zart_django supports PostgreSQL and SQLite, not {vendor}")


__all__ = ["Backend", "current", "for_alias"]

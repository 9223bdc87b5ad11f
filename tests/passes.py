"""Which of ``make test``'s two passes runs a test: the SQLite pass (the default) or the
PostgreSQL pass (``ZART_DB=postgres``, see ``tests/settings.py``)."""

from __future__ import annotations

import os

import pytest


def sqlite_pass_only(why: str) -> pytest.MarkDecorator:
    """Skip in the PostgreSQL pass a test whose outcome does not depend on the pass's database,
    saying ``why``; it runs in the SQLite pass."""
    return pytest.mark.skipif(
        os.environ.get("ZART_DB") == "postgres", reason=f"{why}: it runs in the SQLite pass"
    )

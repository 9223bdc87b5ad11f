"""The dedicated benchmark databases: created fresh before a run and dropped after it.

Never the demo or test databases: SQLite ``var/bench-zart.sqlite3`` and PostgreSQL ``zart_bench``.
This module runs before Django is set up (in ``bench.run``), so it talks to PostgreSQL through
psycopg directly.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from bench.settings import (
    DBOS_POSTGRES_NAME,
    DBOS_SQLITE_PATH,
    POSTGRES,
    POSTGRES_NAME,
    SQLITE_PATH,
)


def _admin() -> psycopg.Connection:
    return psycopg.connect(
        host=POSTGRES["HOST"],
        port=POSTGRES["PORT"],
        user=POSTGRES["USER"],
        dbname="postgres",
        autocommit=True,
        connect_timeout=3,
    )


def postgres_problem() -> str | None:
    """Why the PostgreSQL benchmarks cannot run (no server, no access), or None if they can."""
    try:
        with _admin():
            return None
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"no PostgreSQL at {POSTGRES['HOST']}:{POSTGRES['PORT']} ({first})"


def create(db: str) -> None:
    """Start ``db`` (``sqlite`` or ``postgres``) from an empty benchmark database."""
    drop(db)
    if db == "postgres":
        with _admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(POSTGRES_NAME)))
    else:
        SQLITE_PATH.parent.mkdir(exist_ok=True)


def drop(db: str) -> None:
    """Remove the benchmark database ``db`` and DBOS's beside it, if they exist."""
    if db == "postgres":
        with _admin() as conn:
            for name in (POSTGRES_NAME, DBOS_POSTGRES_NAME):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
    else:
        for path in (SQLITE_PATH, DBOS_SQLITE_PATH):
            for suffix in ("", "-wal", "-shm"):
                path.with_name(path.name + suffix).unlink(missing_ok=True)

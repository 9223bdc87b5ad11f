"""SQLite: one writer at a time, so transactions begin IMMEDIATE and a claim needs no row locks;
its clock is text to the millisecond; wake-ups go by UNIX datagram sockets beside the file."""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import transaction
from django.db.backends.sqlite3.base import FORMAT_QMARK_REGEX

from ..models import StepResult
from ..notify_sockets import SocketChannel, channel_for
from .base import Backend, Statement


class SQLiteBackend(Backend):
    vendor = "sqlite"
    POOLS = False
    UTC_TEXT = True
    CLOCK = "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s)"
    """SQLite keeps Django's datetimes as UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff``; ``strftime``
    with ``%f`` writes the same layout to the millisecond, so the two compare correctly as text."""

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        self._one_writer = threading.Lock()
        """Held by the process's thread whose checkpoint writes now (see ``write_returning``)."""
        owned = f" EXISTS (SELECT 1 FROM {self.executions} WHERE {self.owned})"
        step_id = self.column(StepResult, "id")
        marks = ", ".join("%s" for _ in self.step_fields)
        self._owned = owned
        self._marks = f"({marks})"
        self._returned = f"{step_id}, {self.column(StepResult, 'position')}"
        self._checkpoint_insert = (
            f"INSERT INTO {self.steps} ({self.step_columns}) SELECT {marks} WHERE{owned}"
            f"{self.step_conflict} RETURNING {step_id}"
        )
        self._checkpoint_update = (
            f"UPDATE {self.steps} SET {self.step_sets} WHERE {step_id} = %s AND{owned}"
            f" RETURNING {step_id}"
        )

    def wake_channel(self) -> SocketChannel | None:
        """Sockets in a folder beside the database file (see ``zart_django.notify_sockets``);
        none for an in-memory database or on Windows."""
        return channel_for(self.alias, self.connection.settings_dict["NAME"])

    def clock_param(self, shift: float) -> Any:
        """Its clock counts whole milliseconds, so it is rounded up: a time written this
        millisecond is past."""
        return f"{shift + 0.001:+.3f} seconds"

    def read_time(self, value: Any) -> datetime | None:
        """SQLite keeps times as UTC text (read back as text, or as a naive datetime where the
        column's declared type says so)."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)

    def contains_sql(self, text: str, part: str) -> str:
        return f"instr({text}, {part}) > 0"

    def claim_source(self) -> str:
        """Through the due index, named, so due work is found by it however many executions are
        parked or finished."""
        return f"{self.executions} INDEXED BY {self.quote('zart_execution_due')}"

    def checkpoint(
        self, row: StepResult, execution_id: str, token: str, connection: Any = None
    ) -> Statement:
        """The step's write if the claim owns the execution (the heartbeat extends the lease)."""
        values = self.step_values(row, connection)
        if row.pk is None:
            return self._checkpoint_insert, [*values, execution_id, token]
        return self._checkpoint_update, [*values, row.pk, execution_id, token]

    def checkpoint_batch(
        self, rows: Sequence[StepResult], execution_id: str, token: str
    ) -> Statement:
        """The rows' insert if the claim owns the execution (the heartbeat extends the lease)."""
        values = ", ".join([self._marks] * len(rows))
        sql = (
            f"INSERT INTO {self.steps} ({self.step_columns}) SELECT * FROM (VALUES {values})"
            f" WHERE{self._owned}{self.step_conflict} RETURNING {self._returned}"
        )
        params = [value for row in rows for value in self.step_values(row)]
        return sql, [*params, execution_id, token]

    def write_returning(
        self, sql: str, params: list[Any], connection: Any = None
    ) -> tuple[Any, ...] | None:
        """Straight on the ``sqlite3`` connection, the statement converted to its placeholders
        once, when nothing watches the connection's statements (no debug cursor, no
        ``execute_wrapper``) and no transaction is open: Django's cursor and its conversion of the
        placeholders cost a step about 20 µs, near half of SQLite's own work on the row. Errors
        are Django's, as through its cursor.

        Outside a transaction, one thread of the process writes at a time (``_one_writer``): the
        others wait on a lock that wakes the next at once, not in SQLite's busy handler, which
        sleeps 1, 2, 5, 10... up to 100 ms between tries, so that 32 threads writing at once
        waited up to a second for a checkpoint. A write inside a transaction never takes the
        lock: its connection may hold SQLite's, which the lock's holder waits for."""
        if connection is None:
            connection = self.connection
        if connection.in_atomic_block:
            return super().write_returning(sql, params)
        if connection.connection is None:
            connection.ensure_connection()
        with self._one_writer:
            if connection.queries_logged or connection.execute_wrappers:
                return super().write_returning(sql, params)
            with connection.wrap_database_errors:
                cursor = connection.connection.cursor()
                try:
                    cursor.execute(_qmark(sql), params)
                    return cursor.fetchone()
                finally:
                    cursor.close()

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """The transaction begins IMMEDIATE: it takes the write lock (waiting up to the
        connection's timeout) before it reads, so it never fails half way with "database is
        locked", whatever the project's ``OPTIONS``."""
        connection = self.connection
        if connection.in_atomic_block:
            with transaction.atomic(using=self.alias):
                yield
            return
        connection.ensure_connection()
        mode = connection.transaction_mode
        connection.transaction_mode = "IMMEDIATE"
        try:
            with transaction.atomic(using=self.alias):
                connection.transaction_mode = mode
                yield
        finally:
            connection.transaction_mode = mode


@functools.lru_cache(maxsize=64)
def _qmark(sql: str) -> str:
    """``sql`` with ``sqlite3``'s placeholders, converted as Django's SQLite cursor converts it."""
    return FORMAT_QMARK_REGEX.sub("?", sql).replace("%%", "%")

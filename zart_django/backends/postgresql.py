"""PostgreSQL: claims lock with ``FOR UPDATE SKIP LOCKED``, a checkpoint checks the lease under a
shared row lock in the same statement, a delivery is one statement, and wake-ups go by ``NOTIFY``."""

from __future__ import annotations

import contextlib
import functools
import select
from collections.abc import Iterator, Sequence
from typing import Any

from django.db.backends.signals import connection_created

from ..models import StepResult
from ..notify_postgres import NotifyChannel
from .base import Backend, Statement

_OPEN = (2, 3)
"""libpq's ``PQTRANS_INTRANS`` and ``PQTRANS_INERROR``: a transaction is open, healthy or failed
(``psycopg.pq.TransactionStatus``; psycopg is imported only where it is used)."""


def _pipelines(raw: Any) -> bool:
    """Whether ``raw`` can run in pipeline mode: psycopg 3 (not psycopg2) on a libpq 14 or
    newer (the binary package bundles one; a system libpq may be older)."""
    if not hasattr(raw, "pipeline"):
        return False
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


class PostgreSQLBackend(Backend):
    vendor = "postgresql"
    CLOCK = "(statement_timestamp() + %s * interval '1 second')"
    """``statement_timestamp()``: the start of the statement (``now()`` would be the start of the
    transaction); stable, unlike ``clock_timestamp()``, so the due index still serves it."""
    notifies_in_delivery = True

    def __init__(self, alias: str) -> None:
        super().__init__(alias)
        owned = (
            f"WITH owned AS (SELECT {self._execution_column('id')} FROM {self.executions}"
            f" WHERE {self.owned} FOR SHARE) "
        )
        connection = self.connection
        casts = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in self.step_fields)
        step_id = f"{self.steps}.{self.column(StepResult, 'id')}"
        self._owned = owned
        self._casts = f"({casts})"
        self._returned = f"{step_id}, {self.steps}.{self.column(StepResult, 'position')}"
        self._checkpoint_insert = (
            f"{owned}INSERT INTO {self.steps} ({self.step_columns}) SELECT {casts} FROM owned"
            f"{self.step_conflict} RETURNING {step_id}"
        )
        self._checkpoint_update = (
            f"{owned}UPDATE {self.steps} SET {self.step_sets} FROM owned WHERE {step_id} = %s"
            f" RETURNING {step_id}"
        )
        self._deliver_wake = self._deliver_and_wake_sql()
        self._deliver_wake_and_notify = self._deliver_wake_and_notify_sql()

    def clock_param(self, shift: float) -> Any:
        return shift

    def claim_lock(self) -> str:
        return " FOR UPDATE SKIP LOCKED"

    def claim_commit(self) -> str:
        """A claim's transaction commits without waiting for the disk (``synchronous_commit``
        off for that transaction only: the connection's later ones, checkpoints included, wait
        as before). What a claim writes is a lease, and nothing durable rests on it until a
        later synchronous commit, which flushes the write-ahead log in order, and so the claim
        first: the worker's first checkpoint, or an offer that saw the execution running. Only
        a crash of the database server can undo a claim, and only one with no such commit after
        it: the execution is then as it was (due, or under its old lease), and the worker that
        claimed it finds its lease token gone when it reconnects (``LeaseLost``) and writes
        nothing. It saves the way from a wake-up to the next step a flush (0.35 ms here).

        In ``RETURNING``, not ``WHERE``: a volatile function in the ``WHERE`` makes PostgreSQL
        run the ``LIMIT``ed subquery once per row, and the claim takes more rows than asked."""
        return ", set_config('synchronous_commit', 'off', true)"

    def checkpoint(
        self, row: StepResult, execution_id: str, token: str, connection: Any = None
    ) -> Statement:
        """The step's write joined to the lease's check, which takes a shared lock on the
        execution's row: a claim (``FOR UPDATE``) or a cancel waits for it to commit, and it waits
        for theirs and then sees their token. The row itself is not written, so the step costs the
        executions table no new row version (the heartbeat extends the lease)."""
        params = [execution_id, token, *self.step_values(row, connection)]
        if row.pk is None:
            return self._checkpoint_insert, params
        return self._checkpoint_update, [*params, row.pk]

    def checkpoint_batch(
        self, rows: Sequence[StepResult], execution_id: str, token: str
    ) -> Statement:
        """The rows' insert joined to the lease's check, as ``checkpoint`` checks it."""
        values = ", ".join([self._casts] * len(rows))
        sql = (
            f"{self._owned}INSERT INTO {self.steps} ({self.step_columns}) SELECT batch.* FROM"
            f" (VALUES {values}) AS batch, owned{self.step_conflict} RETURNING {self._returned}"
        )
        params = [execution_id, token]
        for row in rows:
            params += self.step_values(row)
        return sql, params

    def cursor(self) -> Any:
        """With psycopg 3 and its prepared statements turned on for the connection (Django turns
        them off for connection poolers; ``OPTIONS["prepare_threshold"]`` turns them on), a
        cursor that binds on the server, so that psycopg prepares each of the engine's statements
        once per connection: parsing and planning the checkpoint were a third of a step's cost,
        and planning the offer's read 0.4 ms. Through Django's cursor wrapper either way (its
        ``execute_wrapper`` hooks, its errors); while Django logs queries (``DEBUG``,
        ``CaptureQueriesContext``) its own cursor, which logs the SQL with its parameters."""
        connection = self.connection
        connection.ensure_connection()
        raw = connection.connection
        if getattr(raw, "prepare_threshold", None) is None or connection.queries_logged:
            return connection.cursor()
        import psycopg  # psycopg 3: psycopg2's connections have no prepare_threshold

        return connection.make_cursor(psycopg.Cursor(raw))

    @contextlib.contextmanager
    def pipelined_atomic(self) -> Iterator[None]:
        """With psycopg 3, outside any transaction (in autocommit): a transaction in psycopg's
        pipeline mode, begun and committed by this method's own statements (Django's ``atomic``
        would switch the connection out of autocommit, and psycopg answers that with round trips
        of its own). ``BEGIN`` and the statements up to the first result read go in one round trip;
        the rest and ``COMMIT`` in a second. Errors surface as Django's (``IntegrityError``...),
        at the latest at the commit; on any error the transaction is rolled back. Elsewhere
        ``atomic`` (inside the caller's transaction a savepoint: an error that surfaced after
        its release would leave that transaction aborted)."""
        connection = self.connection
        connection.ensure_connection()
        raw = connection.connection
        own = connection.get_autocommit() and not connection.in_atomic_block
        if not (own and _pipelines(raw)):
            with self.atomic():
                yield
            return
        with connection.wrap_database_errors:
            try:
                with raw.pipeline():
                    raw.execute("BEGIN")
                    yield
                    raw.execute("COMMIT")
            except BaseException:
                if not raw.closed and raw.info.transaction_status in _OPEN:
                    raw.execute("ROLLBACK")
                raise

    def write_returning(
        self, sql: str, params: list[Any], connection: Any = None
    ) -> tuple[Any, ...] | None:
        """With the statements prepared (see ``cursor``), when nothing watches the connection's
        statements (no debug cursor, no ``execute_wrapper``) and no transaction is open: on a
        psycopg cursor kept with the connection, past Django's cursor wrapper. A cursor finds
        and builds the dumper of each parameter and the loader of each column it meets once,
        for itself: a new cursor a checkpoint did it again for the 16 parameters, a sixth of a
        step's instructions. With Django's pool, while the thread holds no connection, on one
        borrowed from the pool for the statement alone (see ``_write_on_loan``). Errors are
        Django's, as through its cursor."""
        if connection is None:
            connection = self.connection
        if connection.in_atomic_block or connection.queries_logged or connection.execute_wrappers:
            return super().write_returning(sql, params)
        if connection.connection is None and self._lends(connection):
            return self._write_on_loan(connection, sql, params)
        connection.close_if_health_check_failed()
        connection.ensure_connection()
        raw = connection.connection
        if getattr(raw, "prepare_threshold", None) is None:
            return super().write_returning(sql, params)
        with connection.wrap_database_errors:
            return _kept_cursor_returning(raw, sql, params)

    def _lends(self, connection: Any) -> bool:
        """Whether a checkpoint made while the thread holds no connection may borrow one from
        Django's pool for its statement alone: with the statements prepared, and while no
        ``connection_created`` receiver expects to see each connection Django hands out."""
        return (
            connection.pool is not None
            and connection.settings_dict["OPTIONS"].get("prepare_threshold") is not None
            and not connection_created.has_listeners(type(connection))
        )

    def _write_on_loan(
        self, connection: Any, sql: str, params: list[Any]
    ) -> tuple[Any, ...] | None:
        """Run the checkpoint on a connection borrowed from Django's pool and given back at once,
        leaving Django's wrapper unconnected. A worker gives its thread's connection back before
        every step's body (``store.release_pooled_connection``), so Django's ``connect()`` and
        ``close()`` around each checkpoint cost a step 128,000 instructions (rebuilding the
        connection's parameters, setting autocommit again) where the pool's own ``getconn()``
        and ``putconn()`` cost 29,000. Django's pool makes each connection as Django's
        ``connect()`` would (its time zone and role); one given back outside autocommit (closed
        inside a transaction, which the pool rolled back) is put back in autocommit, so the
        statement commits on its own as it does through Django."""
        pool = connection.pool
        with connection.wrap_database_errors:
            pool.open()  # as Django's connect() does, in case nothing opened it yet
            raw = pool.getconn()
            try:
                if not raw.autocommit:
                    raw.autocommit = True
                return _kept_cursor_returning(raw, sql, params)
            finally:
                pool.putconn(raw)

    def row_lock(self) -> str:
        return " FOR UPDATE"

    def contains_sql(self, text: str, part: str) -> str:
        return f"strpos({text}, CAST({part} AS text)) > 0"

    def _deliver_and_wake_sql(self) -> str:
        """The event's insert, the wait's completion and the execution's wake-up as one
        statement: the first two as data-modifying CTEs of the third."""
        return (
            f"WITH event AS ({self._insert_event}), wait AS ({self._wait_completed})"
            f" {self._made_due}"
        )

    def _deliver_wake_and_notify_sql(self) -> str:
        """``_deliver_and_wake_sql`` that also sends the push wake-up: a ``NOTIFY`` is
        transactional, so inside the statement it is heard on commit, as a separate one is."""
        return (
            f"WITH event AS ({self._insert_event}), wait AS ({self._wait_completed}),"
            f" due AS ({self._made_due}) SELECT pg_notify(%s, %s)"
        )

    def _deliver_and_wake(
        self, execution_id: str, run: int, name: str, json: Any, when: Any, notify: bool
    ) -> list[Statement]:
        """One statement: the event, its wait and the execution's wake-up; with ``notify``, the
        push wake-up too (one round trip fewer than its own ``NOTIFY``)."""
        params = [execution_id, run, name, json, when, json, when, execution_id, run, name]
        params += [*self.clock_params(), when, execution_id]
        if notify:
            channel = self.wake_channel()
            return [(self._deliver_wake_and_notify, [*params, *channel.message(1)])]
        return [(self._deliver_wake, params)]

    def server_hung_up(self, raw: Any) -> bool:
        """Closed, or something to read on an idle connection: the server's goodbye (terminated,
        restarted) or the end of the stream."""
        if raw.closed:
            return True
        try:
            readable, _, _ = select.select([raw.pgconn.socket], [], [], 0)
        except Exception:  # the connection is closed already: psycopg refuses to give a socket
            return True
        return bool(readable)

    @functools.cached_property
    def _wake_channel(self) -> NotifyChannel:
        return NotifyChannel(self)

    def wake_channel(self) -> NotifyChannel:
        """``NOTIFY``, that one idle worker wins (see ``zart_django.notify_postgres``)."""
        return self._wake_channel

    def notify(self, channel: str, payload: str) -> None:
        """``pg_notify`` is transactional: the listeners hear it when the transaction commits."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])


def _kept_cursor_returning(raw: Any, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
    """Run ``sql`` on the server-binding psycopg cursor kept with the raw connection ``raw``
    (made on its first statement) and return the first row. A connection serves one thread at
    a time and a client cursor holds nothing on the server, so one cursor serves them all."""
    cursor = getattr(raw, "_zart_cursor", None)
    if cursor is None:
        import psycopg  # psycopg 3, as in ``cursor``

        cursor = raw._zart_cursor = psycopg.Cursor(raw)
    cursor.execute(sql, params)
    return cursor.fetchone()

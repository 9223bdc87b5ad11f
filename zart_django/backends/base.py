"""What every vendor's backend shares: the statements written the same way on each database, and
the hooks a vendor fills in (its clock, its claim's locking, its checkpoint)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.expressions import RawSQL

from .. import clock
from ..models import ACTIVE_STATUSES, Execution, Status, StepResult

if TYPE_CHECKING:
    from ..notify import Channel

Statement = tuple[str, list[Any]]
"""SQL with its parameters, ready for ``cursor.execute``."""

STEP_COLUMNS = (
    "execution",
    "run",
    "position",
    "name",
    "kind",
    "status",
    "result",
    "error",
    "attempts",
    "deadline",
    "type_ref",
    "started_at",
    "finished_at",
    "parallel_group",
)
"""The fields of ``StepResult`` a checkpoint writes (all but its id)."""


class Backend:
    """The store's statements for one connection alias, built once from the models' ``_meta``
    with every identifier quoted. Subclasses set ``CLOCK`` and write the claim's source and lock
    and the checkpoint."""

    vendor = ""
    CLOCK = ""
    """The database's clock as SQL with one parameter: a shift in seconds (see ``clock_param``)."""
    delivers_in_one_statement = False
    """Whether ``deliver_and_wake`` exists: the event, its wait and the wake-up in one statement."""

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.quote = connections[alias].ops.quote_name
        self.executions = self.quote(Execution._meta.db_table)
        self.steps = self.quote(StepResult._meta.db_table)
        self.step_fields = [StepResult._meta.get_field(name) for name in STEP_COLUMNS]
        self._step_preparation = [
            (field, field.get_internal_type() == "JSONField") for field in self.step_fields
        ]
        self.step_columns = ", ".join(self.quote(f.column) for f in self.step_fields)
        self.step_sets = ", ".join(f"{self.quote(f.column)} = %s" for f in self.step_fields)
        self.step_conflict = (
            f" ON CONFLICT ({self.column(StepResult, 'execution')},"
            f" {self.column(StepResult, 'run')}, {self.column(StepResult, 'position')}) DO NOTHING"
        )
        ex = self._execution_column
        self.owned = (
            f"{ex('id')} = %s AND {ex('lease_token')} = %s"
            f" AND {ex('status')} = '{Status.RUNNING.value}'"
        )
        """The condition that the claim with lease token ``%s`` still owns execution ``%s``."""
        self._insert_execution = self._insert_unless_taken_sql(Execution)
        self._claim_head, self._claim_tail = self._claim_sql()

    @property
    def connection(self) -> BaseDatabaseWrapper:
        """This thread's connection to the alias."""
        return connections[self.alias]

    def column(self, model: type[Model], name: str) -> str:
        """The quoted column of field ``name`` of ``model``."""
        return self.quote(model._meta.get_field(name).column)

    def _execution_column(self, name: str) -> str:
        return self.column(Execution, name)

    def clock_param(self, shift: float) -> Any:
        """The parameter of ``CLOCK`` for the database's time plus ``shift`` seconds."""
        raise NotImplementedError

    def db_time(self, seconds: float = 0.0) -> RawSQL:
        """The database's clock plus ``seconds`` (and the engine clock's test shift), for ORM."""
        return RawSQL(self.CLOCK, [self.clock_param(seconds + clock.offset().total_seconds())])

    def clock_params(self, seconds: float = 0.0) -> list[Any]:
        """The parameters of one ``CLOCK`` in a statement, ``seconds`` ahead."""
        return [self.clock_param(seconds + clock.offset().total_seconds())]

    def now(self) -> datetime:
        """The database's clock (plus the engine clock's test shift), read in one query."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"SELECT {self.CLOCK}", self.clock_params())
            (value,) = cursor.fetchone()
        return self.read_time(value)

    def read_time(self, value: Any) -> datetime:
        """A time the database's clock gave, as an aware datetime."""
        return value

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction on the alias for the engine's writes."""
        with transaction.atomic(using=self.alias):
            yield

    def server_hung_up(self, raw: Any) -> bool:
        """Whether the server closed this idle raw connection (only PostgreSQL can tell)."""
        return False

    @property
    def listens(self) -> bool:
        """Whether idle workers can be woken (``zart_django.notify``), not only poll."""
        return self.wake_channel() is not None

    def wake_channel(self) -> Channel | None:
        """How writers wake this database's idle workers; None if they only poll."""
        return None

    def notify(self, channel: str, payload: str) -> None:
        """Send ``payload`` to the listeners of ``channel`` when the current transaction commits."""
        raise NotImplementedError(f"{self.vendor} has no notifications")

    def _insert_unless_taken_sql(self, model: type[Model]) -> str:
        fields = model._meta.concrete_fields
        columns = ", ".join(self.quote(field.column) for field in fields)
        marks = ", ".join(["%s"] * len(fields))
        return (
            f"INSERT INTO {self.quote(model._meta.db_table)} ({columns}) VALUES ({marks})"
            f" ON CONFLICT ({self.quote(model._meta.pk.column)}) DO NOTHING"
        )

    def insert_execution(self, row: Execution) -> Statement:
        """``INSERT ... ON CONFLICT (id) DO NOTHING`` of ``row``: stored unless the id is taken."""
        connection = self.connection
        values = [
            field.get_db_prep_save(getattr(row, field.attname), connection)
            for field in Execution._meta.concrete_fields
        ]
        return self._insert_execution, values

    def claim_source(self) -> str:
        """The table the claim's subquery reads due executions from."""
        return self.executions

    def claim_lock(self) -> str:
        """What the claim's subquery appends to lock the rows it picks."""
        return ""

    def _claim_sql(self) -> tuple[str, str]:
        """The claim, split where the task names' placeholders go."""
        ex = self._execution_column
        status, scheduled = ex("status"), ex("scheduled_at")
        active = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
        running = f"'{Status.RUNNING.value}'"
        head = (
            f"UPDATE {self.executions} SET {status} = {running}, {ex('lease_token')} = %s,"
            f" {ex('lease_owner')} = %s, {scheduled} = {self.CLOCK},"
            f" {ex('updated_at')} = {self.CLOCK},"
            f" {ex('recoveries')} = {ex('recoveries')}"
            f" + (CASE WHEN {status} = {running} THEN 1 ELSE 0 END)"
            f" WHERE {ex('id')} IN (SELECT {ex('id')} FROM {self.claim_source()}"
            f" WHERE {status} IN ({active}) AND {scheduled} <= {self.CLOCK}"
            f" AND {ex('task_name')} IN ("
        )
        returned = ", ".join(
            ex(name)
            for name in ("id", "recoveries", "task_name", "input", "deadline", "run", "parent")
        )
        tail = f") ORDER BY {scheduled} LIMIT %s{self.claim_lock()}) RETURNING {returned}"
        return head, tail

    def claim(
        self, token: str, owner: str, names: Sequence[str], limit: int, lease: float
    ) -> Statement:
        """Take up to ``limit`` due executions of the tasks ``names`` under ``token``, the
        lease expiring ``lease`` seconds from now; returns the claimed rows."""
        sql = self._claim_head + ", ".join(["%s"] * len(names)) + self._claim_tail
        now = self.clock_params()
        params = [token, owner, *self.clock_params(lease), *now, *now, *names, limit]
        return sql, params

    def step_values(self, row: StepResult) -> list[Any]:
        """``row``'s fields as the checkpoint writes them: what ``get_db_prep_save`` gives. A plain
        ``str``, ``int`` or None of a field that is not JSON is passed as it is and an aware
        ``datetime`` straight to the backend's adapter, skipping Django's generic preparation,
        which they do not need (it was a third of the engine's time in a step)."""
        connection = self.connection
        adapt_datetime = connection.ops.adapt_datetimefield_value
        values = []
        for field, json in self._step_preparation:
            value = getattr(row, field.attname)
            kind = type(value)
            if json:
                values.append(field.get_db_prep_save(value, connection))
            elif value is None or kind is str or kind is int:
                values.append(value)
            elif isinstance(value, Enum):  # a status or kind: its value, as the field stores it
                values.append(value.value)
            elif kind is datetime and value.tzinfo is not None:
                values.append(adapt_datetime(value))
            else:
                values.append(field.get_db_prep_save(value, connection))
        return values

    def write_returning(self, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
        """Run one write statement of the engine (the checkpoint's) and return the first row it
        returns, or None."""
        with self.connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def checkpoint(self, row: StepResult, execution_id: str, token: str) -> Statement:
        """Store ``row`` (insert, or update if it has an id) if ``token`` still owns the
        execution; returns the step's id, or nothing if it does not (or the row was there). It
        does not write the execution's row: the heartbeat extends the lease."""
        raise NotImplementedError

    def checkpoint_batch(
        self, rows: Sequence[StepResult], execution_id: str, token: str
    ) -> Statement:
        """Insert new ``rows`` in one statement if ``token`` still owns the execution; returns
        (id, position) of each row stored (none if it does not own it, nor rows already there)."""
        raise NotImplementedError

    def deliver_and_wake(
        self, execution_id: str, run: int, name: str, payload: Any, now: datetime
    ) -> Statement:
        """Store the event, complete the wait parked on it, make the execution due: one
        statement, where ``delivers_in_one_statement``."""
        raise NotImplementedError(f"{self.vendor} delivers in several statements")

"""What every vendor's backend shares: the statements written the same way on each database, and
the hooks a vendor fills in (its clock, its claim's locking, its checkpoint)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Model
from django.db.models.expressions import RawSQL

from .. import clock
from ..models import (
    ACTIVE_STATUSES,
    ANY_SEPARATOR,
    Event,
    Execution,
    Status,
    StepKind,
    StepResult,
    StepStatus,
)

if TYPE_CHECKING:
    from ..notify import Channel

Statement = tuple[str, list[Any]]
"""SQL with its parameters, ready for ``cursor.execute``."""


@dataclass(frozen=True)
class OfferState:
    """What an offer of event ``name`` decides on, read under the execution's row lock: the
    execution, whether ``name`` was delivered to its run, the latest wait for ``name`` and the
    latest wait for the first of several events that include ``name`` (``any_*``; None where
    there is no such wait)."""

    task_name: str
    status: str
    waiting_on: str
    deadline: datetime | None
    run: int
    delivered: bool
    wait_status: str | None
    wait_deadline: datetime | None
    wait_type: str | None
    any_status: str | None
    any_deadline: datetime | None


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

    def __init__(self, alias: str) -> None:
        self.alias = alias
        self.quote = connections[alias].ops.quote_name
        self.executions = self.quote(Execution._meta.db_table)
        self.steps = self.quote(StepResult._meta.db_table)
        self.step_fields = [StepResult._meta.get_field(name) for name in STEP_COLUMNS]
        self._step_preparation = [
            (field.attname, field, field.get_internal_type() == "JSONField")
            for field in self.step_fields
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
        self.events = self.quote(Event._meta.db_table)
        self._lock_execution = (
            f"SELECT 1 FROM {self.executions} WHERE {ex('id')} = %s{self.row_lock()}"
        )
        self._offer_state = self._offer_state_sql()
        self._insert_event = self._insert_event_sql()
        self._wait_completed, self._made_due = self._complete_wait_sql()
        step_columns = ", ".join(self.quote(f.column) for f in StepResult._meta.concrete_fields)
        self._load_steps = (
            f"SELECT {step_columns} FROM {self.steps} WHERE {self.column(StepResult, 'execution')}"
            f" = %s AND {self.column(StepResult, 'run')} = %s"
            f" ORDER BY {self.column(StepResult, 'position')}"
        )
        self._event_payload = (
            f"SELECT {self.column(Event, 'payload')} FROM {self.events}"
            f" WHERE {self.column(Event, 'execution')} = %s AND {self.column(Event, 'run')} = %s"
            f" AND {self.column(Event, 'name')} = %s"
        )

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

    def read_time(self, value: Any) -> datetime | None:
        """A time the database gave (its clock, a column, a subquery's), as an aware datetime."""
        return value

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """A transaction on the alias for the engine's writes."""
        with transaction.atomic(using=self.alias):
            yield

    @contextlib.contextmanager
    def pipelined_atomic(self) -> Iterator[None]:
        """``atomic`` for a few statements, which the backend may send as they are executed and
        whose answers it may read only when a result is read (then a statement whose result
        is not read, and the commit, cost no round trip of their own; an error can surface as
        late as the commit). Where it does, Django sees no transaction: a
        ``transaction.on_commit`` inside runs at once, so wake work up after the block. Here
        the same as ``atomic``."""
        with self.atomic():
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

    def claim_commit(self) -> str:
        """What the claim's ``RETURNING`` appends to set how its transaction commits (it is
        evaluated for each row claimed, after the row's lock, and changes nothing else)."""
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
        tail = (
            f") ORDER BY {scheduled} LIMIT %s{self.claim_lock()})"
            f" RETURNING {returned}{self.claim_commit()}"
        )
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

    def row_lock(self) -> str:
        """What a ``SELECT`` of one execution appends to lock its row until the transaction
        ends (nothing where the transaction holds the database's write lock already)."""
        return ""

    def contains_sql(self, text: str, part: str) -> str:
        """SQL that is true where ``part`` occurs in ``text`` (both SQL expressions)."""
        raise NotImplementedError

    def lock_execution(self, execution_id: str) -> Statement:
        """Lock the execution's row until the transaction ends; returns a row if there is one."""
        return self._lock_execution, [execution_id]

    def _offer_state_sql(self) -> str:
        ex = self._execution_column

        def st(name: str) -> str:
            return f"s.{self.column(StepResult, name)}"

        def latest(column: str, kind: StepKind, match: str) -> str:
            """The column of the run's latest step of ``kind`` that ``match`` selects."""
            return (
                f"(SELECT {st(column)} FROM {self.steps} s WHERE {st('execution')} = e.{ex('id')}"
                f" AND {st('run')} = e.{ex('run')} AND {st('kind')} = '{kind.value}'"
                f" AND {match} ORDER BY {st('position')} DESC LIMIT 1)"
            )

        def ev(name: str) -> str:
            return f"v.{self.column(Event, name)}"

        named = f"{st('name')} = %s"
        among = self.contains_sql(f"'{ANY_SEPARATOR}' || {st('name')} || '{ANY_SEPARATOR}'", "%s")
        columns = ", ".join(
            f"e.{ex(name)}" for name in ("task_name", "status", "waiting_on", "deadline", "run")
        )
        delivered = (
            f"EXISTS (SELECT 1 FROM {self.events} v WHERE {ev('execution')} = e.{ex('id')}"
            f" AND {ev('run')} = e.{ex('run')} AND {ev('name')} = %s)"
        )
        waits = ", ".join(
            [
                *(latest(column, StepKind.EVENT, named) for column in ("status", "deadline")),
                latest("type_ref", StepKind.EVENT, named),
                *(latest(column, StepKind.ANY, among) for column in ("status", "deadline")),
            ]
        )
        return f"SELECT {columns}, {delivered}, {waits} FROM {self.executions} e WHERE e.{ex('id')} = %s"

    def offer_state(self, execution_id: str, name: str) -> Statement:
        """Read what an offer of ``name`` decides on (the row of ``OfferState``'s fields, in
        order); run it after ``lock_execution``, in the same transaction."""
        among = f"{ANY_SEPARATOR}{name}{ANY_SEPARATOR}"
        return self._offer_state, [name, name, name, name, among, among, execution_id]

    def read_offer_state(self, row: Sequence[Any]) -> OfferState:
        """``offer_state``'s row as an ``OfferState``, its times as aware datetimes."""
        task, status, waiting_on, deadline, run, delivered, wait_status, wait_deadline = row[:8]
        wait_type, any_status, any_deadline = row[8:]
        return OfferState(
            task,
            status,
            waiting_on,
            self.read_time(deadline),
            run,
            bool(delivered),
            wait_status,
            self.read_time(wait_deadline),
            wait_type,
            any_status,
            self.read_time(any_deadline),
        )

    def _insert_event_sql(self) -> str:
        columns = ", ".join(
            self.column(Event, name)
            for name in ("execution", "run", "name", "payload", "created_at")
        )
        return f"INSERT INTO {self.events} ({columns}) VALUES (%s, %s, %s, %s, %s)"

    def _event_values(
        self, execution_id: str, run: int, name: str, payload: Any, now: datetime
    ) -> tuple[Any, Any]:
        """The payload as JSON for the database, and ``now`` as its adapter takes it."""
        connection = self.connection
        json = Event._meta.get_field("payload").get_db_prep_save(payload, connection)
        return json, connection.ops.adapt_datetimefield_value(now)

    notifies_in_delivery = False
    """Whether ``deliver`` can send the push wake-up in the delivery's own statement."""

    def deliver(
        self,
        execution_id: str,
        run: int,
        name: str,
        payload: Any,
        now: datetime,
        wake: bool,
        notify: bool = False,
    ) -> list[Statement]:
        """Store the event in the run's inbox and, with ``wake`` (the execution is parked on
        it), complete the wait and make the execution due; with ``notify`` too, send the push
        wake-up (only where ``notifies_in_delivery``)."""
        json, when = self._event_values(execution_id, run, name, payload, now)
        if wake:
            return self._deliver_and_wake(execution_id, run, name, json, when, notify)
        return [(self._insert_event, [execution_id, run, name, json, when])]

    def _deliver_and_wake(
        self, execution_id: str, run: int, name: str, json: Any, when: Any, notify: bool
    ) -> list[Statement]:
        """``deliver`` to a parked execution: the event, its wait's completion and the
        execution's wake-up, here as three statements."""
        if notify:
            raise NotImplementedError(f"{self.vendor} cannot notify in a delivery")
        event = (self._insert_event, [execution_id, run, name, json, when])
        return [event, *self._complete_wait(execution_id, run, name, json, when)]

    def _complete_wait(
        self, execution_id: str, run: int, name: str, json: Any, when: Any
    ) -> list[Statement]:
        """Complete the wait for ``name`` with the payload and make the execution due."""
        return [
            (self._wait_completed, [json, when, execution_id, run, name]),
            (self._made_due, [*self.clock_params(), when, execution_id]),
        ]

    def _complete_wait_sql(self) -> tuple[str, str]:
        """The two statements of ``_complete_wait``: the wait's, then the execution's."""
        ex = self._execution_column

        def st(column: str) -> str:
            return self.column(StepResult, column)

        wait = (
            f"UPDATE {self.steps} SET {st('status')} = '{StepStatus.COMPLETED.value}',"
            f" {st('result')} = %s, {st('finished_at')} = %s WHERE {st('execution')} = %s"
            f" AND {st('run')} = %s AND {st('name')} = %s"
            f" AND {st('kind')} = '{StepKind.EVENT.value}'"
            f" AND {st('status')} = '{StepStatus.WAITING.value}'"
        )
        due = (
            f"UPDATE {self.executions} SET {ex('scheduled_at')} = {self.CLOCK},"
            f" {ex('updated_at')} = %s WHERE {ex('id')} = %s"
        )
        return wait, due

    def renew(self, execution_id: str, token: str, fields: dict[str, Any]) -> Statement:
        """Write ``fields`` (names of ``Execution``'s fields: values, or ``RawSQL`` such as
        ``db_time``) to the execution if the claim with lease ``token`` still owns it: the
        statement's row count says whether it did."""
        connection = self.connection
        sets = []
        params: list[Any] = []
        for name, value in fields.items():
            field = Execution._meta.get_field(name)
            if isinstance(value, RawSQL):
                sets.append(f"{self.quote(field.column)} = {value.sql}")
                params += value.params
            else:
                sets.append(f"{self.quote(field.column)} = %s")
                params.append(field.get_db_prep_save(value, connection))
        sql = f"UPDATE {self.executions} SET {', '.join(sets)} WHERE {self.owned}"
        return sql, [*params, execution_id, token]

    def load_steps(self, execution_id: str, run: int) -> Statement:
        """Every step row of the run, in order (the columns ``read_steps`` takes)."""
        return self._load_steps, [execution_id, run]

    def read_steps(self, rows: Sequence[Sequence[Any]]) -> list[StepResult]:
        """``load_steps``'s rows as ``StepResult`` instances, their JSON decoded and their times
        aware, as the ORM would give them."""
        connection = self.connection
        readers = []
        for field in StepResult._meta.concrete_fields:
            kind = field.get_internal_type()
            if kind == "JSONField":
                readers.append(
                    functools.partial(field.from_db_value, expression=None, connection=connection)
                )
            elif kind == "DateTimeField":
                readers.append(self.read_time)
            else:
                readers.append(None)
        return [
            StepResult.from_db(
                self.alias,
                None,
                [
                    value if read is None else read(value)
                    for read, value in zip(readers, row, strict=True)
                ],
            )
            for row in rows
        ]

    def event_payload(self, execution_id: str, run: int, name: str) -> Statement:
        """The payload of event ``name`` offered to the run (a row if there is one)."""
        return self._event_payload, [execution_id, run, name]

    def read_payload(self, value: Any) -> Any:
        """A payload column as the database gave it, decoded as the ORM decodes it."""
        return Event._meta.get_field("payload").from_db_value(value, None, self.connection)

    def read_claimed(self, row: Sequence[Any]) -> tuple[Any, ...]:
        """A row ``claim`` returned, its input decoded and its deadline aware: (id, recoveries,
        task_name, input, deadline, run, parent_id)."""
        execution_id, recoveries, task_name, data, deadline, run, parent_id = row[:7]
        data = Execution._meta.get_field("input").from_db_value(data, None, self.connection)
        return execution_id, recoveries, task_name, data, self.read_time(deadline), run, parent_id

    def renew_leases(self, leases: Sequence[tuple[str, str]], lease: float) -> Statement:
        """Extend to ``lease`` seconds from now the leases (execution id, lease token) still
        held, but not of rows another transaction locks (the claim skips those too): for a
        claim's transaction, which waits on no row lock."""
        ex = self._execution_column
        ids = [execution_id for execution_id, _ in leases]
        tokens = sorted({token for _, token in leases})
        sql = (
            f"UPDATE {self.executions} SET {ex('scheduled_at')} = {self.CLOCK}"
            f" WHERE {ex('id')} IN (SELECT {ex('id')} FROM {self.executions}"
            f" WHERE {ex('id')} IN ({', '.join(['%s'] * len(ids))})"
            f" AND {ex('lease_token')} IN ({', '.join(['%s'] * len(tokens))})"
            f" AND {ex('status')} = '{Status.RUNNING.value}'{self.claim_lock()})"
        )
        return sql, [*self.clock_params(lease), *ids, *tokens]

    POOLS = True
    """Whether Django's backend for the vendor can hold a connection pool (``OPTIONS["pool"]``),
    so that a thread's connection is worth giving back while the thread waits."""

    UTC_TEXT = False
    """Whether the database keeps times as naive UTC text (SQLite, Django's layout): an aware
    UTC time of a step's row is then written as such text straight away, while the connection's
    time zone is UTC (Django's generic adapter converts and checks it: half of a step's
    preparation of its values)."""

    def step_values(self, row: StepResult, connection: Any = None) -> list[Any]:
        """``row``'s fields as the checkpoint writes them: what ``get_db_prep_save`` gives. A JSON
        field's value goes straight to the backend's JSON adapter (None as SQL NULL), a plain
        ``str``, ``int`` or None of another field as it is, an enum member as its value and an
        aware ``datetime`` straight to the backend's adapter (see ``UTC_TEXT``), skipping Django's
        generic preparation, which they do not need (it was a third of the engine's time in a
        step). The fields are read from the row's ``__dict__`` (all of them are loaded: the
        engine builds its rows whole). ``connection``: this thread's connection to the alias,
        when the caller has looked it up already (a look-up costs a step 2.6 µs)."""
        if connection is None:
            connection = self.connection
        ops = connection.ops
        utc_text = self.UTC_TEXT and connection.timezone is UTC
        loaded = row.__dict__
        values = []
        for name, field, json in self._step_preparation:
            value = loaded[name] if name in loaded else getattr(row, name)
            kind = type(value)
            if json:
                values.append(None if value is None else ops.adapt_json_value(value, field.encoder))
            elif value is None or kind is str or kind is int:
                values.append(value)
            elif isinstance(value, Enum):  # a status or kind: its value, as the field stores it
                values.append(value._value_)
            elif kind is datetime and value.tzinfo is not None:
                if utc_text and value.tzinfo is UTC:
                    values.append(value.isoformat(" ")[:-6])  # as Django writes it, naive
                else:
                    values.append(ops.adapt_datetimefield_value(value))
            else:
                values.append(field.get_db_prep_save(value, connection))
        return values

    def cursor(self) -> Any:
        """A cursor for the engine's own statements: Django's (its hooks, its errors)."""
        return self.connection.cursor()

    def write_returning(
        self, sql: str, params: list[Any], connection: Any = None
    ) -> tuple[Any, ...] | None:
        """Run one write statement of the engine (the checkpoint's) and return the first row it
        returns, or None. ``connection``: this thread's connection, if looked up already, for
        the vendors' fast paths; this generic path goes through ``cursor``, which finds it."""
        with self.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchone()

    def checkpoint(
        self, row: StepResult, execution_id: str, token: str, connection: Any = None
    ) -> Statement:
        """Store ``row`` (insert, or update if it has an id) if ``token`` still owns the
        execution; returns the step's id, or nothing if it does not (or the row was there). It
        does not write the execution's row: the heartbeat extends the lease. ``connection`` as
        for ``step_values``."""
        raise NotImplementedError

    def checkpoint_batch(
        self, rows: Sequence[StepResult], execution_id: str, token: str
    ) -> Statement:
        """Insert new ``rows`` in one statement if ``token`` still owns the execution; returns
        (id, position) of each row stored (none if it does not own it, nor rows already there)."""
        raise NotImplementedError

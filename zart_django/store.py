"""Every database operation of the engine: the only module that claims, checkpoints or parks work.

Each write made on behalf of a worker checks the lease token it claimed the execution with, so a
worker that lost its lease (it stalled, or the execution was cancelled) cannot overwrite anything.
Leases and due times are compared and computed with the database's clock, not the worker's.

The engine's writes run through ``_write``: on SQLite they begin IMMEDIATE and wait out a busy
file; a checkpoint is retried on a new connection when the old one was lost. The functions a
worker calls while a durable function runs raise ``DatabaseUnavailable`` (a ``BaseException``)
when the database fails them, so the function's own ``except Exception`` cannot swallow it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import select
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.expressions import RawSQL

from . import clock
from .errors import (
    DatabaseUnavailable,
    EventAlreadyDelivered,
    EventExpired,
    ExecutionAlreadyExists,
    ExecutionFinished,
    ExecutionNotFound,
    ExecutionResuming,
    LeaseLost,
)
from .models import ACTIVE_STATUSES, Event, Execution, Status, StepKind, StepResult, StepStatus
from .notify import notify
from .reserved import reservation

logger = logging.getLogger("zart_django")

T = TypeVar("T")
P = ParamSpec("P")

CONNECTION_ERRORS = (OperationalError, InterfaceError)
_BUSY_PATIENCE = 30.0  # seconds an engine write waits out a SQLite file another process writes


def _db_time(seconds: float = 0.0) -> RawSQL:
    """The database's clock plus ``seconds`` (and the engine clock's test shift), as SQL.

    PostgreSQL: ``statement_timestamp()``, the start of the statement (``now()`` would be the start
    of the transaction); stable, unlike ``clock_timestamp()``, so the due index still serves it.

    SQLite keeps Django's datetimes as UTC text, ``YYYY-MM-DD HH:MM:SS.ffffff``; ``strftime`` with
    ``%f`` writes the same layout to the millisecond, so the two compare correctly as text. Its
    clock counts whole milliseconds, so it is rounded up: a time written this millisecond is past.
    """
    shift = seconds + clock.offset().total_seconds()
    if connection.vendor == "postgresql":
        return RawSQL("(statement_timestamp() + %s * interval '1 second')", [shift])
    modifier = f"{shift + 0.001:+.3f} seconds"
    return RawSQL("strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', %s)", [modifier])


def _sql(expression: RawSQL) -> tuple[str, list[Any]]:
    return expression.sql, list(expression.params)


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """``transaction.atomic`` for the engine's writes. On SQLite the transaction begins IMMEDIATE:
    it takes the write lock (waiting up to the connection's timeout) before it reads, so it never
    fails half way with "database is locked", whatever the project's ``OPTIONS``."""
    if connection.vendor != "sqlite" or connection.in_atomic_block:
        with transaction.atomic():
            yield
        return
    connection.ensure_connection()
    mode = connection.transaction_mode
    connection.transaction_mode = "IMMEDIATE"
    try:
        with transaction.atomic():
            connection.transaction_mode = mode
            yield
    finally:
        connection.transaction_mode = mode


def _write(statements: Callable[[], T], *, single: bool = False, reconnect_for: float = 0.0) -> T:
    """Run ``statements`` as one transaction of the engine and return what they return.

    ``single``: one statement, run in autocommit on PostgreSQL. A busy SQLite file is waited out
    for up to ``_BUSY_PATIENCE`` seconds; with ``reconnect_for``, a lost connection is replaced
    and the statements run again for up to that many seconds (they must be safe to repeat).
    """
    started = time.monotonic()
    delay = 0.02
    while True:
        try:
            if single and connection.vendor == "postgresql":
                return statements()
            with atomic():
                return statements()
        except CONNECTION_ERRORS as exc:
            busy = _is_busy(exc)
            patience = _BUSY_PATIENCE if busy else reconnect_for
            if connection.in_atomic_block or time.monotonic() - started + delay > patience:
                raise
            logger.warning(
                "database %s, retrying: %s", "busy" if busy else "connection lost", first_line(exc)
            )
            if not busy:
                close_connection()
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _is_busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (SQLITE_BUSY or SQLITE_LOCKED)."""
    code = getattr(exc.__cause__, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def first_line(exc: BaseException) -> str:
    """The first line of an error's message, for a log line."""
    return (str(exc).strip().splitlines() or [repr(exc)])[0]


def close_connection() -> None:
    """Drop this thread's connection (broken, or closed by the server); the next query reconnects."""
    with contextlib.suppress(DatabaseError):
        connection.close()


def drop_dead_connection() -> str:
    """Close this thread's connection if the server closed it or an error left it unusable, so
    the next query opens a new one; return why ("" if it was kept). Call it before each unit of
    work: it costs no query unless an error happened."""
    raw = connection.connection
    if raw is None or connection.in_atomic_block:
        return ""
    reason = ""
    if connection.vendor == "postgresql" and (raw.closed or _hung_up(raw)):
        reason = "the server closed it"
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            reason = "an error left it unusable"
    if reason:
        close_connection()
    return reason


def _hung_up(raw: Any) -> bool:
    """Whether an idle PostgreSQL connection has something to read: the server's goodbye
    (terminated, restarted) or the end of the stream."""
    try:
        readable, _, _ = select.select([raw.pgconn.socket], [], [], 0)
    except Exception:  # the connection is closed already: psycopg refuses to give a socket
        return True
    return bool(readable)


def engine_io(fn: Callable[P, T]) -> Callable[P, T]:
    """For the functions a worker calls while a durable function runs (the engine's, and those of
    apps built on it, such as ``wait_for_approval``'s request): a failure of the database
    surfaces as ``DatabaseUnavailable``, which the function's ``except Exception`` cannot catch."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return fn(*args, **kwargs)
        except CONNECTION_ERRORS as exc:
            raise DatabaseUnavailable(first_line(exc)) from exc

    return wrapper


@dataclass(frozen=True)
class Claim:
    """An execution a worker owns until ``token`` is no longer the stored lease token, with what
    the worker needs to run it."""

    execution_id: str
    token: str
    recoveries: int
    task_name: str
    input: Any
    deadline: datetime | None


def create_execution(
    execution_id: str, task_name: str, input_data: Any, deadline: datetime | None
) -> Execution:
    """Insert a pending execution, atomically, and return the stored execution.

    An existing execution with the same task and input is returned as is (the start is
    idempotent); one with another task or input raises ``ExecutionAlreadyExists``.
    """
    now = clock.now()
    candidate = Execution(
        id=execution_id,
        task_name=task_name,
        input=input_data,
        status=Status.PENDING,
        scheduled_at=now,
        deadline=deadline,
        created_at=now,
        updated_at=now,
    )
    with atomic():
        Execution.objects.bulk_create([candidate], ignore_conflicts=True)
        notify()
    stored = Execution.objects.get(pk=execution_id)
    if stored.task_name != task_name:
        raise ExecutionAlreadyExists(execution_id, f"for task {stored.task_name!r}")
    if stored.input != input_data:
        raise ExecutionAlreadyExists(execution_id, "with a different input")
    return stored


def new_token() -> str:
    """A lease token for one claim."""
    return uuid.uuid4().hex


def claim_due(
    owner: str,
    limit: int,
    lease: float,
    token: str | None = None,
    *,
    tasks: Collection[str],
) -> list[Claim]:
    """Take up to ``limit`` due executions of ``tasks``, and running ones whose lease expired,
    for ``owner``. Executions of other tasks are left for a worker that has their code.

    One statement; "due" and the new lease's expiry are the database's time. Its status filter is
    written exactly as the partial index ``zart_execution_due`` is defined, so the database finds
    due work through that index however many executions are parked or finished. A caller that
    passes its own ``token`` can ``release`` what the claim took if its answer was lost.
    """
    names = sorted(tasks)
    if not names:
        return []
    token = token or new_token()
    table = Execution._meta.db_table
    active = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
    if connection.vendor == "postgresql":
        source, lock = table, " FOR UPDATE SKIP LOCKED"
    else:
        source, lock = f"{table} INDEXED BY zart_execution_due", ""
    expiry, expiry_params = _sql(_db_time(lease))
    now, now_params = _sql(_db_time())
    sql = (
        f"UPDATE {table} SET status = '{Status.RUNNING}', lease_token = %s, lease_owner = %s,"
        f" scheduled_at = {expiry}, updated_at = {now},"
        f" recoveries = recoveries + (CASE WHEN status = '{Status.RUNNING}' THEN 1 ELSE 0 END)"
        f" WHERE id IN (SELECT id FROM {source} WHERE status IN ({active})"
        f" AND scheduled_at <= {now} AND task_name IN ({', '.join('%s' for _ in names)})"
        f" ORDER BY scheduled_at LIMIT %s{lock})"
        " RETURNING id, recoveries, task_name, input, deadline"
    )
    params = [token, owner[:200], *expiry_params, *now_params, *now_params, *names, limit]
    return _write(
        lambda: [
            Claim(e.pk, token, e.recoveries, e.task_name, e.input, e.deadline)
            for e in Execution.objects.raw(sql, params)
        ],
        single=True,
    )


def release(
    tokens: Iterable[str],
    execution_id: str | None = None,
    patience: float = 0.0,
    delay: float = 0.0,
) -> int:
    """Hand back what was claimed with these tokens (only ``execution_id``, if given) and is still
    running under them: pending, due in ``delay`` seconds, lease cleared, ``recoveries`` untouched.
    For a worker that cannot go on because of a database error, or whose claim's answer was lost;
    retried on a new connection for ``patience`` seconds. Returns how many it handed back."""
    tokens = list(tokens)

    def hand_back() -> int:
        owned = Execution.objects.filter(lease_token__in=tokens, status=Status.RUNNING)
        if execution_id is not None:
            owned = owned.filter(pk=execution_id)
        count = owned.update(
            status=Status.PENDING,
            lease_token="",
            scheduled_at=_db_time(delay),
            updated_at=clock.now(),
        )
        if count:
            notify()
        return count

    return _write(hand_back, reconnect_for=patience)


def load_execution(execution_id: str) -> Execution:
    try:
        return Execution.objects.get(pk=execution_id)
    except Execution.DoesNotExist:
        raise ExecutionNotFound(execution_id) from None


def load_steps(execution_id: str) -> list[StepResult]:
    """Every recorded step of the execution, in order: one query."""
    return list(StepResult.objects.filter(execution_id=execution_id).order_by("position"))


def _renew(claim: Claim, **fields: Any) -> None:
    """Write ``fields`` to the execution if ``claim`` still owns it; raise ``LeaseLost`` if not."""
    updated = Execution.objects.filter(
        pk=claim.execution_id, lease_token=claim.token, status=Status.RUNNING
    ).update(updated_at=clock.now(), **fields)
    if not updated:
        raise LeaseLost(claim.execution_id)


_STEP_COLUMNS = (
    "execution",
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
)


@engine_io
def checkpoint(claim: Claim, row: StepResult, lease: float) -> None:
    """Store a step's outcome if ``claim`` still owns the execution: one statement, one commit.

    On PostgreSQL the same statement extends the lease; on SQLite the heartbeat does. A lost
    connection is replaced and the write retried with the same lease token for up to ``lease``
    seconds, the outcome kept in memory meanwhile; if the first attempt committed and only its
    answer was lost, the row it stored is taken as this checkpoint.
    """
    fields = [StepResult._meta.get_field(name) for name in _STEP_COLUMNS]
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    columns = [connection.ops.quote_name(f.column) for f in fields]
    steps = StepResult._meta.db_table
    executions = Execution._meta.db_table
    owned = f"id = %s AND lease_token = %s AND status = '{Status.RUNNING}'"
    owner = [claim.execution_id, claim.token]
    once = " ON CONFLICT (execution_id, position) DO NOTHING"
    if connection.vendor == "postgresql":
        expiry, expiry_params = _sql(_db_time(lease))
        now, now_params = _sql(_db_time())
        prefix = (
            f"WITH owned AS (UPDATE {executions} SET scheduled_at = {expiry}, updated_at = {now}"
            f" WHERE {owned} RETURNING id) "
        )
        params = [*expiry_params, *now_params, *owner]
        if row.pk is None:
            casts = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
            sql = f"INSERT INTO {steps} ({', '.join(columns)}) SELECT {casts} FROM owned{once}"
            params += values
        else:
            sets = ", ".join(f"{c} = %s" for c in columns)
            sql = f"UPDATE {steps} SET {sets} FROM owned WHERE {steps}.id = %s"
            params += [*values, row.pk]
        sql = prefix + sql + f" RETURNING {steps}.id"
    elif row.pk is None:
        marks = ", ".join("%s" for _ in fields)
        sql = (
            f"INSERT INTO {steps} ({', '.join(columns)}) SELECT {marks}"
            f" WHERE EXISTS (SELECT 1 FROM {executions} WHERE {owned}){once} RETURNING id"
        )
        params = [*values, *owner]
    else:
        sets = ", ".join(f"{c} = %s" for c in columns)
        sql = (
            f"UPDATE {steps} SET {sets} WHERE id = %s"
            f" AND EXISTS (SELECT 1 FROM {executions} WHERE {owned}) RETURNING id"
        )
        params = [*values, row.pk, *owner]

    def write() -> tuple[int] | None:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            written = cursor.fetchone()
        return written if written is not None or row.pk is not None else _landed(claim, row)

    written = _write(write, single=True, reconnect_for=lease)
    if written is None:
        raise LeaseLost(claim.execution_id)
    row.pk = written[0]


def _landed(claim: Claim, row: StepResult) -> tuple[int] | None:
    """The id of the step stored at ``row``'s position, if ``claim`` still owns the execution: a
    retried checkpoint whose first attempt committed. None if the claim lost the execution."""
    stored = StepResult.objects.filter(
        execution_id=claim.execution_id,
        position=row.position,
        execution__lease_token=claim.token,
        execution__status=Status.RUNNING,
    ).values_list("pk")
    return stored.first()


@engine_io
def reschedule(claim: Claim, row: StepResult, due_at: datetime) -> None:
    """Store a failed attempt that will be retried and hand the execution back until ``due_at``
    (as far ahead of the database's clock as ``due_at`` is ahead of the engine's)."""
    delay = (due_at - clock.now()).total_seconds()

    def write() -> None:
        _renew(claim, status=Status.PENDING, scheduled_at=_db_time(delay), lease_token="")
        row.save()
        notify()

    _write(write)


@engine_io
def park(claim: Claim, row: StepResult, waiting_on: str, due_at: datetime | None) -> None:
    """Store a wait and let go of the execution until ``due_at`` or until its event arrives.

    The inbox is read again under the row lock taken by the update, so an event offered while the
    worker was deciding to park makes the execution due now instead of being missed.
    """

    def write() -> None:
        _renew(
            claim,
            status=Status.WAITING,
            waiting_on=waiting_on,
            scheduled_at=due_at,
            lease_token="",
        )
        row.save()
        if row.kind == StepKind.EVENT and has_event(claim.execution_id, row.name):
            Execution.objects.filter(pk=claim.execution_id).update(scheduled_at=_db_time())
            notify()

    _write(write)


@engine_io
def finish(claim: Claim, status: Status, output: Any = None, error: str = "") -> None:
    """End the execution with ``status`` if ``claim`` still owns it."""
    _write(
        lambda: _renew(
            claim,
            status=status,
            output=output,
            error=error,
            waiting_on="",
            scheduled_at=None,
            lease_token="",
            finished_at=clock.now(),
        ),
        single=True,
    )


@engine_io
def block(claim: Claim, error: str) -> None:
    """Hold the execution whose code no longer matches its history, if ``claim`` still owns it:
    not due, not finished, its lease let go, ``blocked_at`` the database's now. Events and
    decisions offered meanwhile are kept; a worker started later retries it (``retry_blocked``)."""
    _write(
        lambda: _renew(
            claim,
            status=Status.BLOCKED,
            error=error,
            waiting_on="",
            scheduled_at=None,
            lease_token="",
            blocked_at=_db_time(),
        ),
        single=True,
    )


def retry_blocked(tasks: Collection[str], blocked_before: datetime) -> list[str]:
    """Make due again the blocked executions of ``tasks`` blocked before ``blocked_before`` (a
    worker's start: it may run the code deployed since); return their ids. One that blocks again
    has a later ``blocked_at``, so each worker retries each block once. When none is blocked it
    only reads (it takes no lock a worker's start could wait on)."""
    blocked = Execution.objects.filter(
        status=Status.BLOCKED, task_name__in=list(tasks), blocked_at__lt=blocked_before
    )
    if not blocked.exists():
        return []

    def write() -> list[str]:
        ids = list(blocked.select_for_update().values_list("pk", flat=True))
        if ids:
            Execution.objects.filter(pk__in=ids).update(
                status=Status.PENDING, error="", scheduled_at=_db_time(), updated_at=clock.now()
            )
            notify()
        return ids

    return _write(write)


def database_now() -> datetime:
    """The database's clock (plus the engine clock's test shift), to compare with times the
    engine wrote with it."""
    sql, params = _sql(_db_time())
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {sql}", params)
        (value,) = cursor.fetchone()
    if isinstance(value, str):  # SQLite: UTC as text
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def heartbeat(claims: Iterable[Claim], lease: float) -> None:
    """Extend, to the database's now plus ``lease``, the leases of executions these claims still
    own: one statement."""
    claims = list(claims)
    if not claims:
        return
    owned = Execution.objects.filter(
        pk__in=[c.execution_id for c in claims],
        lease_token__in={c.token for c in claims},
        status=Status.RUNNING,
    )
    _write(lambda: owned.update(scheduled_at=_db_time(lease)), single=True)


@engine_io
def expire_wait(claim: Claim, row: StepResult) -> tuple[bool, Any]:
    """Time out an event wait whose deadline passed, unless its event arrived meanwhile.

    Under the execution's row lock (as ``offer_event`` takes it), so a delivery and the expiry
    are serialized: returns (True, payload) if the event was delivered first (the caller records
    it as received), else stores the wait as timed out and returns (False, None).
    """

    def write() -> tuple[bool, Any]:
        _renew(claim)
        found, payload = event_payload(claim.execution_id, row.name)
        if not found:
            row.save()
        return found, payload

    return _write(write)


def has_event(execution_id: str, name: str) -> bool:
    return Event.objects.filter(execution_id=execution_id, name=name).exists()


@engine_io
def event_payload(execution_id: str, name: str) -> tuple[bool, Any]:
    """(True, payload) if the event was offered, else (False, None)."""
    event = Event.objects.filter(execution_id=execution_id, name=name).only("payload").first()
    return (True, event.payload) if event is not None else (False, None)


def offer_event(
    execution_id: str, name: str, payload: Any, validate: Callable[[str, str], None]
) -> Execution:
    """Store an event in the execution's inbox and, if it is parked on that event, make it due.

    A parked wait is completed here, in the same transaction (as the reference design writes the
    payload into the step results), so the resumed execution finds it recorded. The execution's
    row is locked first and the inbox read after, so two offers, or an offer and the worker timing
    the wait out (``expire_wait``), are serialized: exactly one of them wins.

    ``validate(task_name, type_ref)`` is called with the execution's task and the type its parked
    wait declared ("" if it is not parked on this event), before anything is stored, and raises
    to reject the payload.
    """
    try:
        with atomic():
            return _offer_event(execution_id, name, payload, validate)
    except IntegrityError:
        raise EventAlreadyDelivered(execution_id, name) from None


def _offer_event(
    execution_id: str, name: str, payload: Any, validate: Callable[[str, str], None]
) -> Execution:
    _locked(execution_id)
    wait = StepResult.objects.filter(
        execution_id=OuterRef("pk"), kind=StepKind.EVENT, name=name
    ).order_by("-position")
    execution = (
        Execution.objects.filter(pk=execution_id)
        .annotate(
            delivered=Exists(Event.objects.filter(execution_id=OuterRef("pk"), name=name)),
            wait_status=Subquery(wait.values("status")[:1]),
            wait_deadline=Subquery(wait.values("deadline")[:1]),
            wait_type=Subquery(wait.values("type_ref")[:1]),
        )
        .only("id", "task_name", "status", "waiting_on", "deadline")
        .get()
    )
    if execution.is_finished:
        raise ExecutionFinished(execution_id, execution.status)
    if execution.delivered:
        raise EventAlreadyDelivered(execution_id, name)
    now = clock.now()
    if execution.wait_status == StepStatus.TIMED_OUT or any(
        deadline is not None and now >= deadline
        for deadline in (execution.wait_deadline, execution.deadline)
    ):
        raise EventExpired(execution_id, name)
    parked_on_it = execution.status == Status.WAITING and execution.waiting_on == name
    validate(execution.task_name, execution.wait_type if parked_on_it else "")
    if parked_on_it and connection.vendor == "postgresql":
        _deliver_and_wake(execution_id, name, payload, now)
    else:
        Event.objects.create(execution_id=execution_id, name=name, payload=payload, created_at=now)
        if parked_on_it:
            StepResult.objects.filter(
                execution_id=execution_id,
                kind=StepKind.EVENT,
                name=name,
                status=StepStatus.WAITING,
            ).update(status=StepStatus.COMPLETED, result=payload, finished_at=now)
            Execution.objects.filter(pk=execution_id).update(
                scheduled_at=_db_time(), updated_at=now
            )
    if parked_on_it:
        notify()
    return execution


def _deliver_and_wake(execution_id: str, name: str, payload: Any, now: datetime) -> None:
    """PostgreSQL: store the event, close the parked wait and make the execution due, in one
    statement (the writes of ``offer_event`` sit on the path from a click to the next step)."""
    json = Event._meta.get_field("payload").get_db_prep_save(payload, connection)
    due, due_params = _sql(_db_time())
    sql = (
        f"WITH event AS (INSERT INTO {Event._meta.db_table} (execution_id, name, payload,"
        " created_at) VALUES (%s, %s, %s, %s)),"
        f" wait AS (UPDATE {StepResult._meta.db_table} SET status = '{StepStatus.COMPLETED}',"
        " result = %s, finished_at = %s WHERE execution_id = %s AND name = %s"
        f" AND kind = '{StepKind.EVENT}' AND status = '{StepStatus.WAITING}')"
        f" UPDATE {Execution._meta.db_table} SET scheduled_at = {due}, updated_at = %s"
        " WHERE id = %s"
    )
    params = [execution_id, name, json, now, json, now, execution_id, name]
    params += [*due_params, now, execution_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def cancel(execution_id: str) -> None:
    """Cancel an unfinished execution for good: no worker writes to it or resumes it again.

    Refused with ``ExecutionResuming`` while a delivery to a reserved name (an approval's decision)
    completed the wait it is parked on: that decision is recorded, so the execution must act on it.
    """
    with atomic():
        _locked(execution_id)
        execution = Execution.objects.only("id", "status", "waiting_on").get(pk=execution_id)
        if execution.is_finished:
            raise ExecutionFinished(execution_id, execution.status)
        if (
            execution.status == Status.WAITING
            and reservation(execution.waiting_on) is not None
            and StepResult.objects.filter(
                execution_id=execution_id,
                kind=StepKind.EVENT,
                name=execution.waiting_on,
                status=StepStatus.COMPLETED,
            ).exists()
        ):
            raise ExecutionResuming(execution_id, execution.waiting_on)
        now = clock.now()
        Execution.objects.filter(pk=execution_id).update(
            status=Status.CANCELLED,
            error="cancelled",
            waiting_on="",
            scheduled_at=None,
            lease_token="",
            updated_at=now,
            finished_at=now,
        )


def _locked(execution_id: str) -> None:
    """Lock the execution's row until the transaction ends; ``ExecutionNotFound`` if there is none.

    Read what the decision depends on in a statement after this one: on PostgreSQL a statement
    that waited for the lock still sees other tables as they were when it began.
    """
    if not Execution.objects.select_for_update().filter(pk=execution_id).values_list("pk"):
        raise ExecutionNotFound(execution_id)

"""Every database operation of the engine: the only module that claims, checkpoints or parks work.

Each write made on behalf of a worker checks the lease token it claimed the execution with, so a
worker that lost its lease (it stalled, or the execution was cancelled) cannot overwrite anything.
Leases and due times are compared and computed with the database's clock, not the worker's.

The engine's writes run through ``_write``: on SQLite they begin IMMEDIATE and wait out a busy
file; a checkpoint is retried on a new connection when the old one was lost. The functions a
worker calls while a durable function runs raise ``DatabaseUnavailable`` (a ``BaseException``)
when the database fails them, so the function's own ``except Exception`` cannot swallow it.

Every query goes to the connection ``ZART["DATABASE"]`` names: raw statements and transactions
here through ``_connection()`` and ``atomic()``, ORM queries through the models' default manager.
The statements that differ by vendor (the claim, the checkpoint, the delivery of an event, the
database's clock, SQLite's IMMEDIATE transactions, ``NOTIFY``) are built once per alias by a
backend in ``zart_django.backends``: ``base`` for what every vendor shares, ``postgresql`` and
``sqlite`` for the rest. This module calls them and stays the only one that writes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import (
    CASCADE,
    Count,
    Exists,
    Max,
    Min,
    Model,
    OuterRef,
    Q,
    QuerySet,
)
from django.db.models.expressions import RawSQL

from . import backends, clock, wakeups
from .backends.base import STEP_COLUMNS, OfferState
from .errors import (
    DatabaseUnavailable,
    EventAlreadyDelivered,
    EventExpired,
    ExecutionAlreadyExists,
    ExecutionFinished,
    ExecutionNotFound,
    ExecutionResuming,
    LeaseLost,
    RunRefused,
    ScheduleNotFound,
)
from .models import (
    ACTIVE_STATUSES,
    ANY_SEPARATOR,
    FINISHED_STATUSES,
    CompensationStatus,
    Event,
    Execution,
    Overlap,
    Run,
    RunStart,
    Schedule,
    Status,
    StepKind,
    StepResult,
    StepStatus,
    WorkerSeen,
)
from .reserved import binds
from .runs import Keep
from .signals import execution_finished, execution_started, send

logger = logging.getLogger("zart_django")

T = TypeVar("T")
P = ParamSpec("P")

CONNECTION_ERRORS = (OperationalError, InterfaceError)
_BUSY_PATIENCE = 30.0  # seconds an engine write waits out a SQLite file another process writes


def _db_time(seconds: float = 0.0) -> RawSQL:
    """The database's clock plus ``seconds`` (and the engine clock's test shift), as SQL."""
    return backends.current().db_time(seconds)


def _connection() -> BaseDatabaseWrapper:
    """This thread's connection to ``ZART["DATABASE"]``."""
    return backends.current().connection


@contextlib.contextmanager
def atomic() -> Iterator[None]:
    """``transaction.atomic`` on ``ZART["DATABASE"]`` for the engine's writes. On SQLite the
    transaction begins IMMEDIATE, so it never fails half way with "database is locked"."""
    with backends.current().atomic():
        yield


def _write(statements: Callable[[], T], *, single: bool = False, reconnect_for: float = 0.0) -> T:
    """Run ``statements`` as one transaction of the engine and return what they return.

    ``single``: one write statement, run in autocommit, with no BEGIN/COMMIT around it (SQLite
    takes the write lock when such a statement starts, waiting out a busy file with the
    connection's timeout, so it cannot fail half way as a read-then-write transaction can).
    A busy SQLite file is waited out for up to ``_BUSY_PATIENCE`` seconds; with
    ``reconnect_for``, a lost connection is replaced and the statements run again for up to that
    many seconds (they must be safe to repeat).
    """
    started = time.monotonic()
    delay = 0.02
    while True:
        try:
            if single:
                return statements()
            with atomic():
                return statements()
        except CONNECTION_ERRORS as exc:
            busy = _is_busy(exc)
            patience = _BUSY_PATIENCE if busy else reconnect_for
            if _connection().in_atomic_block or time.monotonic() - started + delay > patience:
                raise
            logger.warning(
                "database %s, retrying: %s", "busy" if busy else "connection lost", first_line(exc)
            )
            if not busy:
                close_connection()
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def transaction(statements: Callable[[], T]) -> T:
    """Run ``statements`` as one transaction on the engine's database, as the engine's own
    writes run: on SQLite it begins IMMEDIATE and a busy file is waited out. For writes that
    must commit together with the engine's (the approvals' ``decide``); they must be safe to
    run again after a rollback."""
    return _write(statements)


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
        _connection().close()


def release_pooled_connection() -> None:
    """Give this thread's connection back to the database's connection pool (Django's
    ``OPTIONS={"pool": ...}`` on PostgreSQL) while the thread has no use for it: a step body is
    about to run, a run, a claim or an async execution's engine call has ended. The next query
    borrows one again, so a worker process needs as many connections as it writes at once, not
    one per thread. Without a pool (never on SQLite: ``Backend.POOLS``), or inside a
    transaction, the connection is kept (reopening it would cost a connect)."""
    backend = backends.current()
    if not backend.POOLS:
        return
    connection = backend.connection
    if connection.connection is None or connection.in_atomic_block:
        return
    if getattr(connection, "pool", None) is not None:
        close_connection()


def drop_dead_connection() -> str:
    """Close this thread's connection if the server closed it or an error left it unusable, so
    the next query opens a new one; return why ("" if it was kept). Call it before each unit of
    work: it costs no query unless an error happened."""
    connection = _connection()
    raw = connection.connection
    if raw is None or connection.in_atomic_block:
        return ""
    reason = ""
    if backends.current().server_hung_up(raw):
        reason = "the server closed it"
    elif connection.errors_occurred:
        if connection.is_usable():
            connection.errors_occurred = False
        else:
            reason = "an error left it unusable"
    if reason:
        close_connection()
    return reason


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
    run: int
    parent_id: str | None = None
    """The execution that started this one as a child, told of its end by ``finish``."""


def create_execution(
    execution_id: str,
    task_name: str,
    input_data: Any,
    deadline: datetime | None,
    started_by: str = "",
    parent_id: str | None = None,
) -> tuple[Execution, bool]:
    """Insert a pending execution, atomically, and return the stored execution and whether this
    call inserted it; ``parent_id`` makes it a child of that execution.

    An existing execution with the same task, input and parent is returned as is, with False
    (the start is idempotent); one with another task, input or parent raises
    ``ExecutionAlreadyExists``. A new one is returned as it was inserted, with no read back.
    """
    candidate = _pending(execution_id, task_name, input_data, deadline, clock.now())
    candidate.started_by = started_by
    candidate.parent_id = parent_id
    with atomic():
        created = _insert_unless_taken(candidate)
        wakeups.work_is_due()
    if created:
        logger.info("execution %s: started (task %s)", execution_id, task_name)
        send(execution_started, execution_id=execution_id, task_name=task_name, input=input_data)
        return candidate, True
    stored = Execution.objects.get(pk=execution_id)
    if stored.task_name != task_name:
        raise ExecutionAlreadyExists(execution_id, f"for task {stored.task_name!r}")
    if stored.input != input_data:
        raise ExecutionAlreadyExists(execution_id, "with a different input")
    if stored.parent_id != parent_id:
        where = f"a child of {stored.parent_id!r}" if stored.parent_id else "a top-level execution"
        raise ExecutionAlreadyExists(execution_id, f"as {where}")
    return stored, False


def _pending(
    execution_id: str, task_name: str, input_data: Any, deadline: datetime | None, now: datetime
) -> Execution:
    """A new execution of ``task_name``, pending and due ``now``."""
    return Execution(
        id=execution_id,
        task_name=task_name,
        input=input_data,
        status=Status.PENDING,
        scheduled_at=now,
        deadline=deadline,
        created_at=now,
        updated_at=now,
    )


def _insert_unless_taken(row: Execution) -> bool:
    """``INSERT ... ON CONFLICT (pk) DO NOTHING`` of ``row``; True when the statement stored it.

    The row count of that statement (``changes()`` on SQLite) is the database's own answer, exact
    whatever the clocks say: a repeated start in the same clock tick still counts as repeated.
    """
    sql, params = backends.current().insert_execution(row)
    with backends.current().cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount == 1


SEEN_EVERY = 30.0
"""Seconds between a worker's ``worker_seen`` writes."""
SEEN_FORGOTTEN_AFTER = timedelta(days=7)
"""A host not seen for this long is forgotten (a container that was replaced)."""


def worker_seen(host: str) -> None:
    """Record that a worker on ``host`` looks for work now (one upsert), and forget hosts not
    seen for ``SEEN_FORGOTTEN_AFTER``."""
    now = clock.now()
    with atomic():
        WorkerSeen.objects.bulk_create(
            [WorkerSeen(host=host, seen_at=now)],
            update_conflicts=True,
            unique_fields=["host"],
            update_fields=["seen_at"],
        )
        WorkerSeen.objects.filter(seen_at__lt=now - SEEN_FORGOTTEN_AFTER).delete()


def last_worker_seen() -> datetime | None:
    """When any worker last looked for work (None if none ever did, or long ago): one query."""
    return WorkerSeen.objects.aggregate(last=Max("seen_at"))["last"]


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
    renew: Collection[Claim] = (),
) -> list[Claim]:
    """Take up to ``limit`` due executions of ``tasks``, and running ones whose lease expired,
    for ``owner``. Executions of other tasks are left for a worker that has their code.

    One statement; "due" and the new lease's expiry are the database's time. Its status filter is
    written exactly as the partial index ``zart_execution_due`` is defined, so the database finds
    due work through that index however many executions are parked or finished. A caller that
    passes its own ``token`` can ``release`` what the claim took if its answer was lost.

    ``renew``: claims the caller runs now whose heartbeat is late. Their leases are extended
    first, in the claim's transaction (all but those of rows another transaction locks, which the
    claim skips too): a worker whose claim got the write lock keeps what it runs, and never claims
    back an execution it is running (on SQLite a heartbeat can wait behind other writers for
    longer than a lease).
    """
    names = sorted(tasks)
    if not names:
        return []
    token = token or new_token()
    backend = backends.current()
    sql, params = backend.claim(token, owner[:200], names, limit, lease)

    def take() -> list[Claim]:
        with backend.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        claimed = [backend.read_claimed(row) for row in rows]
        return [Claim(execution_id, token, *rest) for execution_id, *rest in claimed]

    if not renew:
        return _write(take, single=True)

    leases = [(claim.execution_id, claim.token) for claim in renew]

    def renew_then_take() -> list[Claim]:
        with backend.cursor() as cursor:
            cursor.execute(*backend.renew_leases(leases, lease))
        return take()

    return _write(renew_then_take)


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
            wakeups.work_is_due(count)
        return count

    return _write(hand_back, reconnect_for=patience)


def load_execution(execution_id: str) -> Execution:
    try:
        return Execution.objects.get(pk=execution_id)
    except Execution.DoesNotExist:
        raise ExecutionNotFound(execution_id) from None


def count_by_status_and_task() -> list[tuple[str, str, int]]:
    """(status, task name, how many) for every status and task that has executions: one query."""
    groups = Execution.objects.values("status", "task_name").annotate(n=Count("pk")).order_by()
    return [(g["status"], g["task_name"], g["n"]) for g in groups]


def due_backlog() -> tuple[int, datetime | None]:
    """How many executions a worker could claim now (by the database's clock), and the due time
    of the oldest of them: one query, through the due index."""
    due = Execution.objects.filter(status__in=ACTIVE_STATUSES, scheduled_at__lte=_db_time())
    found = due.aggregate(count=Count("pk"), oldest=Min("scheduled_at"))
    return found["count"], found["oldest"]


def list_executions(status: str | None, task: str | None, limit: int) -> list[Execution]:
    """Up to ``limit`` executions, newest first, of ``status`` and ``task`` if given."""
    executions = Execution.objects.order_by("-created_at", "id")
    if status:
        executions = executions.filter(status=status)
    if task:
        executions = executions.filter(task_name=task)
    return list(executions[:limit])


def load_events(execution_id: str) -> list[Event]:
    """The events offered to the execution, in the order they arrived."""
    return list(Event.objects.filter(execution_id=execution_id).order_by("created_at", "pk"))


@dataclass(frozen=True)
class Stats:
    """Executions counted by status and task, and the two that waited longest: the oldest due
    (its due time passed and no worker took it yet) and the oldest parked (waiting)."""

    counts: list[tuple[str, str, int]]
    oldest_due: Execution | None
    oldest_parked: Execution | None


def execution_stats() -> Stats:
    """Counts by (status, task), and the oldest due and oldest parked executions: three queries."""
    due = Execution.objects.filter(status__in=ACTIVE_STATUSES, scheduled_at__lte=_db_time())
    return Stats(
        counts=sorted(count_by_status_and_task()),
        oldest_due=due.order_by("scheduled_at").first(),
        oldest_parked=Execution.objects.filter(status=Status.WAITING)
        .order_by("updated_at")
        .first(),
    )


def load_steps(execution_id: str, run: int) -> list[StepResult]:
    """Every recorded step of one run of the execution, in order: one query."""
    backend = backends.current()
    with backend.cursor() as cursor:
        cursor.execute(*backend.load_steps(execution_id, run))
        return backend.read_steps(cursor.fetchall())


def load_history(execution_id: str) -> tuple[list[Run], list[StepResult]]:
    """The execution's runs (none if it ran once) and the steps of every run, in order."""
    runs = list(Run.objects.filter(execution_id=execution_id).order_by("number"))
    steps = StepResult.objects.filter(execution_id=execution_id).order_by("run", "position")
    return runs, list(steps)


def _renew(claim: Claim, **fields: Any) -> None:
    """Write ``fields`` to the execution if ``claim`` still owns it; raise ``LeaseLost`` if not."""
    fields = {"updated_at": clock.now(), **fields}
    with backends.current().cursor() as cursor:
        cursor.execute(*backends.current().renew(claim.execution_id, claim.token, fields))
        if cursor.rowcount != 1:
            raise LeaseLost(claim.execution_id)


@engine_io
def checkpoint(claim: Claim, row: StepResult, lease: float) -> None:
    """Store a step's outcome if ``claim`` still owns the execution: one statement, one commit.

    The execution's row is only read (the heartbeat extends the lease), so on PostgreSQL a step
    leaves no new row version of it behind (nor index entries to vacuum). A lost
    connection is replaced and the write retried with the same lease token for up to ``lease``
    seconds, the outcome kept in memory meanwhile; if the first attempt committed and only its
    answer was lost, the row it stored is taken as this checkpoint.
    """
    backend = backends.current()
    connection = backend.connection  # this thread's, the same after a reconnect
    sql, params = backend.checkpoint(row, claim.execution_id, claim.token, connection)

    def write() -> tuple[int] | None:
        written = backend.write_returning(sql, params, connection)
        return written if written is not None or row.pk is not None else _landed(claim, row)

    written = _write(write, single=True, reconnect_for=lease)
    if written is None:
        raise LeaseLost(claim.execution_id)
    row.pk = written[0]


CHECKPOINT_BATCH = 100
"""Rows ``checkpoint_many`` inserts per statement, at most."""


@engine_io
def checkpoint_many(claim: Claim, rows: list[StepResult], lease: float) -> None:
    """Store the outcomes of several steps (a parallel group's members that finished together)
    if ``claim`` still owns the execution: new rows ``CHECKPOINT_BATCH`` to a statement, each
    statement one commit; rows stored before (a member retried) one at a time, as ``checkpoint``.
    Lost connections are handled as ``checkpoint`` handles them."""
    new = [row for row in rows if row.pk is None]
    for row in rows:
        if row.pk is not None:
            checkpoint(claim, row, lease)
    for start in range(0, len(new), CHECKPOINT_BATCH):
        _insert_batch(claim, new[start : start + CHECKPOINT_BATCH], lease)


def _insert_batch(claim: Claim, rows: list[StepResult], lease: float) -> None:
    sql, params = backends.current().checkpoint_batch(rows, claim.execution_id, claim.token)

    def write() -> dict[int, int]:
        with _connection().cursor() as cursor:
            cursor.execute(sql, params)
            stored = {position: pk for pk, position in cursor.fetchall()}
        if len(stored) < len(rows):  # a first attempt committed and only its answer was lost
            stored.update(_landed_positions(claim, rows[0].run, [r.position for r in rows]))
        return stored

    stored = _write(write, single=True, reconnect_for=lease)
    if len(stored) < len(rows):
        raise LeaseLost(claim.execution_id)
    for row in rows:
        row.pk = stored[row.position]


def _landed_positions(claim: Claim, run: int, positions: list[int]) -> dict[int, int]:
    """Position -> id of the steps stored at ``positions``, if ``claim`` still owns the
    execution (else none)."""
    stored = StepResult.objects.filter(
        execution_id=claim.execution_id,
        run=run,
        position__in=positions,
        execution__lease_token=claim.token,
        execution__status=Status.RUNNING,
    ).values_list("position", "pk")
    return dict(stored)


def _landed(claim: Claim, row: StepResult) -> tuple[int] | None:
    """The id of the step stored at ``row``'s position, if ``claim`` still owns the execution: a
    retried checkpoint whose first attempt committed. None if the claim lost the execution."""
    stored = StepResult.objects.filter(
        execution_id=claim.execution_id,
        run=row.run,
        position=row.position,
        execution__lease_token=claim.token,
        execution__status=Status.RUNNING,
    ).values_list("pk")
    return stored.first()


@engine_io
def reschedule(claim: Claim, row: StepResult | None, due_at: datetime) -> None:
    """Store a failed attempt that will be retried (unless ``row`` is None: it was checkpointed)
    and hand the execution back until ``due_at`` (as far ahead of the database's clock as
    ``due_at`` is ahead of the engine's)."""
    delay = (due_at - clock.now()).total_seconds()

    def write() -> None:
        _renew(claim, status=Status.PENDING, scheduled_at=_db_time(delay), lease_token="")
        if row is not None:
            row.save()
        wakeups.work_is_due()

    _write(write)


@engine_io
def park(
    claim: Claim,
    row: StepResult,
    waiting_on: str,
    due_at: datetime | None,
    events: Collection[str] = (),
) -> None:
    """Store a wait and let go of the execution until ``due_at`` or until one of ``events``
    arrives (by default the event an event wait is named for).

    The inbox is read again under the row lock taken by the update, so an event offered while the
    worker was deciding to park makes the execution due now instead of being missed.
    """
    wakes_on = list(events) or ([row.name] if row.kind == StepKind.EVENT else [])

    def write() -> None:
        _renew(
            claim,
            status=Status.WAITING,
            waiting_on=waiting_on,
            scheduled_at=due_at,
            lease_token="",
        )
        row.save()
        if wakes_on and first_event(claim.execution_id, claim.run, wakes_on) is not None:
            Execution.objects.filter(pk=claim.execution_id).update(scheduled_at=_db_time())
            wakeups.work_is_due()

    _write(write)


@engine_io
def finish(
    claim: Claim,
    status: Status,
    output: Any = None,
    error: str = "",
    compensation: tuple[str, dict[str, Any]] | None = None,
) -> None:
    """End the execution with ``status`` if ``claim`` still owns it; with ``compensation``
    (its status and what it stored), end its compensation too.

    A child execution's end is delivered to its parent in the same transaction, as the event
    ``child:<id>`` (see ``child_end``): kept in the parent's inbox until its ``wait_for_child``
    gets there, or resuming it if it is parked on it. The parent's row is locked before the
    child's, as ``cancel`` locks them (ancestors first), so the two cannot deadlock.
    """
    ended = {}
    if compensation is not None:
        ended = {"compensation_status": compensation[0], "compensation": compensation[1]}

    def end() -> None:
        _renew(
            claim,
            status=status,
            output=output,
            error=error,
            waiting_on="",
            scheduled_at=None,
            lease_token="",
            finished_at=clock.now(),
            **ended,
        )

    parent_id = claim.parent_id
    if parent_id is None:
        _write(end, single=True)
        return

    def end_and_tell_parent() -> None:
        parent_there = _lock_if_there(parent_id)
        end()
        if parent_there:
            outcome = child_end(claim.task_name, status, output, error)
            _deliver_to_parent(parent_id, claim.execution_id, outcome)

    _write(end_and_tell_parent)


CHILD_EVENTS = "child:"
"""The reserved namespace of the events that tell a parent execution that a child ended."""


def child_event(child_id: str) -> str:
    """The event a child's end is delivered to its parent as."""
    return CHILD_EVENTS + child_id


def child_end(task_name: str, status: str, output: Any, error: str) -> dict[str, Any]:
    """The payload of a child's end event: its task, status, output (JSON) and error."""
    return {"task": task_name, "status": str(status), "output": output, "error": error}


def _lock_if_there(execution_id: str) -> bool:
    """Lock the execution's row until the transaction ends; False if there is none (deleted)."""
    backend = backends.current()
    with backend.cursor() as cursor:
        cursor.execute(*backend.lock_execution(execution_id))
        return cursor.fetchone() is not None


def _deliver_to_parent(parent_id: str, child_id: str, outcome: dict[str, Any]) -> None:
    """Deliver a child's end to its parent, unless the parent can no longer take it (it
    finished, its wait for the child expired, or an earlier end of the child was delivered:
    the parent takes the first)."""
    try:
        _offer_event(parent_id, child_event(child_id), outcome, lambda task, wait_type: None).wake()
    except (ExecutionNotFound, ExecutionFinished, EventAlreadyDelivered, EventExpired) as exc:
        logger.info("execution %s: its end is not delivered to its parent: %s", child_id, exc)


def child_ids(execution_id: str) -> list[str]:
    """The ids of the executions that ``execution_id`` started as children, oldest first."""
    children = Execution.objects.filter(parent_id=execution_id).order_by("created_at", "id")
    return list(children.values_list("pk", flat=True))


@engine_io
def load_child(child_id: str) -> Execution | None:
    """The execution ``child_id`` (its task, status, outcome and parent), or None."""
    fields = ("id", "task_name", "status", "output", "error", "parent_id")
    return Execution.objects.filter(pk=child_id).only(*fields).first()


@engine_io
def collect_child_end(claim: Claim, child: Execution) -> None:
    """Put the end of ``child`` (finished) in the inbox of the run ``claim`` owns, unless it is
    there: for a wait reached in a run its end was never delivered to (a rerun or restart of
    the parent begun after the child ended)."""
    name = child_event(child.pk)

    def write() -> None:
        _renew(claim)
        if not Event.objects.filter(
            execution_id=claim.execution_id, run=claim.run, name=name
        ).exists():
            outcome = child_end(child.task_name, child.status, child.output, child.error)
            Event.objects.create(
                execution_id=claim.execution_id,
                run=claim.run,
                name=name,
                payload=outcome,
                created_at=clock.now(),
            )

    _write(write)


@engine_io
def begin_compensation(claim: Claim, compensation: dict[str, Any]) -> None:
    """Record, if ``claim`` still owns the execution, that its ``on_failure`` handler runs from
    now on, with what it needs to resume after a crash (``compensation.begun``). The handler is
    free of the execution's timeout: the deadline is cleared, so events it waits for are taken."""
    _write(
        lambda: _renew(
            claim,
            compensation_status=CompensationStatus.RUNNING,
            compensation=compensation,
            deadline=None,
        ),
        single=True,
    )


@engine_io
def running_compensation(execution_id: str) -> dict[str, Any] | None:
    """What ``begin_compensation`` stored, while the execution's compensation runs; else None."""
    running = Execution.objects.filter(
        pk=execution_id, compensation_status=CompensationStatus.RUNNING
    )
    return running.values_list("compensation", flat=True).first()


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
        _unblock(Execution.objects.filter(pk__in=ids))
        return ids

    return _write(write)


def resume_blocked(execution_id: str) -> bool:
    """Make a blocked execution due again in the same run, its history as it is (for the code
    deployed since it blocked); False, and nothing written, if it is not blocked."""

    def write() -> bool:
        _locked(execution_id)
        return bool(_unblock(Execution.objects.filter(pk=execution_id, status=Status.BLOCKED)))

    return _write(write)


def _unblock(executions: QuerySet[Execution]) -> int:
    """Make ``executions`` pending and due now, their error cleared, and wake the workers if
    there were any; return how many."""
    count = executions.update(
        status=Status.PENDING, error="", scheduled_at=_db_time(), updated_at=clock.now()
    )
    if count:
        wakeups.work_is_due(count)
    return count


def database_now() -> datetime:
    """The database's clock (plus the engine clock's test shift), to compare with times the
    engine wrote with it."""
    return backends.current().now()


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
    found = expire_any_wait(claim, row, [row.name])
    return (True, found[1]) if found is not None else (False, None)


@engine_io
def expire_any_wait(
    claim: Claim, row: StepResult, names: Collection[str]
) -> tuple[str, Any] | None:
    """Time out a wait for the first of the events ``names`` whose deadline passed, unless one of
    them arrived meanwhile: as ``expire_wait``, returns (name, payload) of the first delivered,
    else stores the wait as timed out and returns None."""

    def write() -> tuple[str, Any] | None:
        _renew(claim)
        found = first_event(claim.execution_id, claim.run, names)
        if found is None:
            row.save()
        return found

    return _write(write)


@engine_io
def first_event(execution_id: str, run: int, names: Collection[str]) -> tuple[str, Any] | None:
    """(name, payload) of the event among ``names`` delivered first to this run (by the order the
    database stored them in: deliveries are serialized by the execution's row lock), else None."""
    offered = Event.objects.filter(execution_id=execution_id, run=run, name__in=list(names))
    event = offered.order_by("pk").only("name", "payload").first()
    return (event.name, event.payload) if event is not None else None


@engine_io
def event_payload(execution_id: str, run: int, name: str) -> tuple[bool, Any]:
    """(True, payload) if the event was offered to this run, else (False, None)."""
    backend = backends.current()
    with backend.cursor() as cursor:
        cursor.execute(*backend.event_payload(execution_id, run, name))
        row = cursor.fetchone()
    return (True, backend.read_payload(row[0])) if row is not None else (False, None)


def offer_event(
    execution_id: str, name: str, payload: Any, validate: Callable[[str, str], None]
) -> None:
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
        with backends.current().pipelined_atomic():
            delivery = _offer_event(execution_id, name, payload, validate)
    except IntegrityError:
        raise EventAlreadyDelivered(execution_id, name) from None
    delivery.wake()


@dataclass(frozen=True)
class _Delivery:
    """What an offer did, for the wakers: they are told after its transaction (a waker that
    must wait for the commit defers itself; one inside the statement was sent already)."""

    due: bool
    """The execution was parked on the event: it is due now."""
    pushed: bool
    """The delivery's own statement sent the push wake-up."""

    def wake(self) -> None:
        if self.due:
            wakeups.work_is_due(pushed=self.pushed)


def _offer_event(
    execution_id: str, name: str, payload: Any, validate: Callable[[str, str], None]
) -> _Delivery:
    """The offer's statements, in the caller's transaction; the caller calls ``wake`` on the
    answer after them (after the commit, where the transaction is its own)."""
    backend = backends.current()
    with backend.cursor() as lock, backend.cursor() as cursor:
        lock.execute(*backend.lock_execution(execution_id))
        cursor.execute(*backend.offer_state(execution_id, name))  # runs once the lock is held
        if lock.fetchone() is None:
            raise ExecutionNotFound(execution_id)
        state = backend.read_offer_state(cursor.fetchone())
        if state.status in FINISHED_STATUSES:
            raise ExecutionFinished(execution_id, state.status)
        if state.delivered:
            raise EventAlreadyDelivered(execution_id, name)
        now = clock.now()
        if _expired(state, now):
            raise EventExpired(execution_id, name)
        parked_on_it = state.status == Status.WAITING and name in waits_for(state.waiting_on)
        validate(state.task_name, state.wait_type if parked_on_it and state.wait_type else "")
        push = parked_on_it and backend.notifies_in_delivery and wakeups.pushes()
        delivery = backend.deliver(execution_id, state.run, name, payload, now, parked_on_it, push)
        for statement in delivery:
            cursor.execute(*statement)
    logger.info(
        "execution %s: event %s %s",
        execution_id,
        name,
        "received, resuming" if parked_on_it else "kept in its inbox until its wait",
    )
    return _Delivery(parked_on_it, push)


def _expired(state: OfferState, now: datetime) -> bool:
    """Whether the event comes too late: the execution's deadline passed, or the latest wait for
    it (alone, or among several) timed out or is still waiting past its deadline. A wait with no
    deadline that timed out was woken by its timer (``wake_at``): its event is still awaited by
    a later wait on the same name."""
    if state.deadline is not None and now >= state.deadline:
        return True
    if state.wait_deadline is not None and (
        state.wait_status == StepStatus.TIMED_OUT or now >= state.wait_deadline
    ):
        return True
    late = state.any_deadline is not None and now >= state.any_deadline
    return state.any_status == StepStatus.TIMED_OUT or (
        state.any_status == StepStatus.WAITING and late
    )


def waits_for(waiting_on: str) -> list[str]:
    """The events whose delivery resumes an execution parked on ``waiting_on``: one event's name,
    or the names of a wait for the first of several, joined by ``|`` (no name has one)."""
    return waiting_on.split(ANY_SEPARATOR)


def cancel(execution_id: str) -> None:
    """Cancel an unfinished execution for good, with its unfinished descendants (the children
    it started, theirs, ...): no worker writes to them or resumes them again. One transaction;
    rows are locked ancestors first, as ``finish`` locks them. A cancelled child's end is
    delivered to its parent (``ChildFailed`` where it waits for it).

    Refused with ``ExecutionResuming`` while a delivery to a binding reserved name (an approval's
    decision) completed the wait it, or one of those descendants, is parked on: that decision is
    recorded, so the execution must act on it.
    """
    with atomic():
        parent = Execution.objects.filter(pk=execution_id).values_list("parent_id", flat=True)
        parent_id = parent.first()
        parent_there = parent_id is not None and _lock_if_there(parent_id)
        _locked(execution_id)
        fields = ("id", "task_name", "status", "waiting_on", "run")
        execution = Execution.objects.only(*fields).get(pk=execution_id)
        if execution.is_finished:
            raise ExecutionFinished(execution_id, execution.status)
        descendants = [d for d in _descendants(execution_id) if not d.is_finished]
        for unfinished in (execution, *descendants):
            _refuse_if_resuming(unfinished)
        now = clock.now()
        cancelled = {
            "status": Status.CANCELLED,
            "waiting_on": "",
            "scheduled_at": None,
            "lease_token": "",
            "updated_at": now,
            "finished_at": now,
        }
        Execution.objects.filter(pk=execution_id).update(error="cancelled", **cancelled)
        cascade = f"cancelled with its ancestor {execution_id!r}"
        Execution.objects.filter(pk__in=[d.pk for d in descendants]).update(
            error=cascade, **cancelled
        )
        if parent_there:
            outcome = child_end(execution.task_name, Status.CANCELLED, None, "cancelled")
            _deliver_to_parent(parent_id, execution_id, outcome)
        for ended, error in [(execution, "cancelled"), *((d, cascade) for d in descendants)]:
            logger.info("execution %s: %s", ended.pk, error)
            send(
                execution_finished,
                execution_id=ended.pk,
                task_name=ended.task_name,
                status=Status.CANCELLED.value,
                output=None,
                error=error,
            )


def _descendants(execution_id: str) -> list[Execution]:
    """Every execution started, directly or not, as a child of ``execution_id``, finished ones
    included, locked a generation at a time (ancestors first)."""
    found: list[Execution] = []
    seen = {execution_id}
    generation = [execution_id]
    while generation:
        children = (
            Execution.objects.select_for_update()
            .filter(parent_id__in=generation)
            .exclude(pk__in=seen)
            .only("id", "task_name", "status", "waiting_on", "run")
            .order_by("pk")
        )
        level = list(children)
        found += level
        generation = [child.pk for child in level]
        seen.update(generation)
    return found


def _refuse_if_resuming(execution: Execution) -> None:
    """Raise ``ExecutionResuming`` if a binding delivery (a decision) completed the wait the
    execution is parked on: it must act on it before it can be cancelled."""
    if (
        execution.status == Status.WAITING
        and binds(execution.waiting_on)
        and StepResult.objects.filter(
            execution_id=execution.pk,
            run=execution.run,
            kind=StepKind.EVENT,
            name=execution.waiting_on,
            status=StepStatus.COMPLETED,
        ).exists()
    ):
        raise ExecutionResuming(execution.pk, execution.waiting_on)


def _locked(execution_id: str) -> None:
    """Lock the execution's row until the transaction ends; ``ExecutionNotFound`` if there is none.

    Read what the decision depends on in a statement after this one: on PostgreSQL a statement
    that waited for the lock still sees other tables as they were when it began.
    """
    if not _lock_if_there(execution_id):
        raise ExecutionNotFound(execution_id)


def count_name(model: type[Model]) -> str:
    """How purge counts name rows of ``model``: "executions", "step_results", "events", ..."""
    return str(model._meta.verbose_name_plural).replace(" ", "_")


def _finished_before(cutoff: datetime, statuses: Iterable[str]) -> QuerySet[Execution]:
    """Executions that finished, with one of ``statuses``, before ``cutoff``, oldest first (the
    partial index ``zart_execution_finished`` serves it)."""
    chosen = [s for s in statuses if s in FINISHED_STATUSES]
    return Execution.objects.filter(status__in=chosen, finished_at__lt=cutoff).order_by(
        "finished_at"
    )


def _delete_finished(executions: QuerySet[Execution], limit: int) -> dict[str, int]:
    """Delete up to ``limit`` of ``executions`` that are finished, with the rows that cascade
    from them (steps, events, approval requests; never approval records). Call inside a
    transaction: the rows are locked first (on PostgreSQL, rows locked by others are skipped),
    and only executions still finished once locked are deleted."""
    locked = executions.select_for_update(skip_locked=True).filter(status__in=FINISHED_STATUSES)
    ids = list(locked.values_list("pk", flat=True)[:limit])
    if not ids:
        return {}
    _, deleted = (
        Execution.objects.filter(pk__in=ids, status__in=FINISHED_STATUSES).only("pk").delete()
    )
    return {count_name(_model(label)): n for label, n in deleted.items()}


def _model(label: str) -> type[Model]:
    from django.apps import apps

    return apps.get_model(label)


def purge_finished(
    cutoff: datetime, statuses: Iterable[str], batch_size: int, max_batches: int | None = None
) -> dict[str, int]:
    """Delete executions finished before ``cutoff`` with one of ``statuses``, a transaction per
    batch of ``batch_size``, until none is left (or after ``max_batches``); return the counts of
    rows deleted by kind. An unfinished execution is never touched, whatever happens meanwhile."""
    chosen = _finished_before(cutoff, list(statuses))
    total: dict[str, int] = {}
    batches = 0
    while max_batches is None or batches < max_batches:
        deleted = _write(lambda: _delete_finished(chosen, batch_size))
        for name, n in deleted.items():
            total[name] = total.get(name, 0) + n
        batches += 1
        if deleted.get(count_name(Execution), 0) < batch_size:
            break
    return total


def count_purgeable(cutoff: datetime, statuses: Iterable[str]) -> dict[str, int]:
    """What ``purge_finished`` would delete now, by kind (the executions, and each kind of row
    that would go with them), without deleting anything."""
    chosen = _finished_before(cutoff, list(statuses)).order_by().values("pk")
    counts = {count_name(Execution): chosen.count()}
    for relation in Execution._meta.related_objects:
        if relation.on_delete is CASCADE:
            related = relation.related_model._base_manager.using(backends.current().alias).filter(
                **{f"{relation.field.name}__in": chosen}
            )
            if found := related.count():
                counts[count_name(relation.related_model)] = found
    return counts


def delete_finished(execution_ids: Iterable[str]) -> dict[str, int]:
    """Delete these executions if they are finished, as ``purge_finished`` deletes (unfinished
    ones are left as they are); return the counts of rows deleted by kind."""
    ids = list(execution_ids)
    return _write(lambda: _delete_finished(Execution.objects.filter(pk__in=ids), len(ids)))


def begin_run(
    execution_id: str,
    began: RunStart,
    allowed: Collection[str],
    keep: Keep,
    *,
    deadline: datetime | None,
    from_step: str = "",
    new_input: tuple[Any] | None = None,
    carry_inbox: bool = False,
) -> Execution:
    """Begin the next run of an execution whose status is in ``allowed`` (else ``RunRefused``).

    In one transaction under the execution's row lock: the run it replaces is kept as a ``Run``
    (how it ended); the steps ``keep(steps, offered)`` picks of that run (``offered``: the names
    in its inbox) are copied into the new one, at their positions, with
    the events their waits consumed (all of that run's inbox with ``carry_inbox``); the execution
    becomes pending and due now, with no output or error, ``deadline``, and ``new_input[0]`` as
    its input if given. The rows of earlier runs are never changed. ``keep`` may raise to refuse.
    """
    with atomic():
        _locked(execution_id)
        execution = Execution.objects.get(pk=execution_id)
        if execution.status not in allowed:
            raise RunRefused(execution_id, began, execution.status, allowed)
        steps = load_steps(execution_id, execution.run)[: _function_steps(execution)]
        inbox = Event.objects.filter(execution_id=execution_id, run=execution.run)
        offered = set(inbox.values_list("name", flat=True))
        kept = keep(steps, offered)
        now = clock.now()
        number = execution.run + 1
        _close_run(execution, now)
        data = new_input[0] if new_input is not None else execution.input
        Run.objects.create(
            execution_id=execution_id,
            number=number,
            began=began,
            from_step=from_step,
            input=data,
            started_at=now,
        )
        StepResult.objects.bulk_create(
            StepResult(execution_id=execution_id, run=number, **_copied(row)) for row in kept
        )
        if not carry_inbox:
            inbox = inbox.filter(name__in=[name for row in kept for name in row.awaited])
        Event.objects.bulk_create(
            Event(
                execution_id=execution_id,
                run=number,
                name=event.name,
                payload=event.payload,
                created_at=event.created_at,
            )
            for event in inbox
        )
        Execution.objects.filter(pk=execution_id).update(
            run=number,
            status=Status.PENDING,
            input=data,
            output=None,
            error="",
            waiting_on="",
            scheduled_at=_db_time(),
            deadline=deadline,
            lease_token="",
            recoveries=0,
            updated_at=now,
            finished_at=None,
            compensation_status="",
            compensation=None,
        )
        wakeups.work_is_due()
    return load_execution(execution_id)


def _function_steps(execution: Execution) -> int | None:
    """How many of the current run's steps are the durable function's: those before its
    compensation's (all, None, if it has none)."""
    if not execution.compensation_status or execution.compensation is None:
        return None
    return int(execution.compensation["from_position"])


def _close_run(execution: Execution, now: datetime) -> None:
    """Keep how the execution's current run ended in its ``Run`` (made now for a first run)."""
    ended = {
        "status": execution.status,
        "output": execution.output,
        "error": execution.error,
        "finished_at": execution.finished_at or now,
    }
    if execution.run == 1:
        Run.objects.create(
            execution_id=execution.pk,
            number=1,
            began=RunStart.START,
            input=execution.input,
            started_at=execution.created_at,
            **ended,
        )
    else:
        Run.objects.filter(execution_id=execution.pk, number=execution.run).update(**ended)


def _copied(row: StepResult) -> dict[str, Any]:
    """A step's stored fields, but its execution and run: what a new run keeps of it."""
    return {name: getattr(row, name) for name in STEP_COLUMNS if name not in ("execution", "run")}


@dataclass(frozen=True)
class Occurrence:
    """What a schedule's tick starts: the execution (id, input, deadline) for the tick ``at``,
    and the schedule's next tick after it."""

    execution_id: str
    at: datetime
    input: Any
    deadline: datetime | None
    next_run_at: datetime


def sync_schedules(
    wanted: Iterable[Schedule],
    unscheduled: Collection[str],
    first_run: Callable[[Schedule, datetime], datetime],
) -> None:
    """In one transaction: store each of ``wanted`` (task name, expression, time zone, overlap)
    that is new, changed or inactive, active and next due at ``first_run(row, now)``, keeping its
    pause; leave an unchanged one as it is; mark inactive the schedules of ``unscheduled`` tasks.
    Safe to run from several workers at once."""

    def write() -> None:
        now = database_now()
        for row in wanted:
            row.next_run_at = first_run(row, now)
            row.updated_at = now
            Schedule.objects.bulk_create([row], ignore_conflicts=True)
            changed = Schedule.objects.filter(pk=row.pk).filter(
                ~Q(cron=row.cron)
                | ~Q(every=row.every)
                | ~Q(timezone=row.timezone)
                | ~Q(overlap=row.overlap)
                | Q(active=False)
            )
            changed.update(
                cron=row.cron,
                every=row.every,
                timezone=row.timezone,
                overlap=row.overlap,
                next_run_at=row.next_run_at,
                active=True,
                updated_at=now,
            )
        Schedule.objects.filter(task_name__in=list(unscheduled), active=True).update(
            active=False, updated_at=now
        )

    _write(write)


def _held_by_queue() -> Q:
    """A schedule with ``overlap="queue"`` whose last occurrence is unfinished: its tick waits."""
    unfinished = Execution.objects.filter(pk=OuterRef("last_occurrence")).exclude(
        status__in=FINISHED_STATUSES
    )
    return Q(overlap=Overlap.QUEUE) & Exists(unfinished)


def tick_schedules(
    tasks: Collection[str], plan: Callable[[Schedule, datetime], Occurrence], limit: int
) -> list[str]:
    """Start the occurrences of the due schedules of ``tasks`` (up to ``limit`` schedules) and
    return the ids of the executions stored.

    First one read (no lock) that finds nothing due on most passes. Then one transaction: the due
    schedules are locked (PostgreSQL skips those another worker holds; SQLite's transaction holds
    the write lock); for each, ``plan(row, now)`` (``now``: the database's clock) gives the
    occurrence; unless the overlap policy says skip, it is inserted as the idempotent start
    inserts, and ``next_run_at`` advances to the occurrence's next tick in the same transaction.
    A ``queue`` schedule whose last occurrence is unfinished is not due: it stays held.
    """
    due = (
        Schedule.objects.filter(
            task_name__in=sorted(tasks), paused=False, active=True, next_run_at__lte=_db_time()
        )
        .exclude(_held_by_queue())
        .order_by("next_run_at")
    )
    if not due.exists():
        return []
    started = _write(lambda: _tick(due, plan, limit))
    for execution_id, task_name, input_data in started:
        logger.info("execution %s: started by its schedule (task %s)", execution_id, task_name)
        send(execution_started, execution_id=execution_id, task_name=task_name, input=input_data)
    return [execution_id for execution_id, _, _ in started]


def _tick(
    due: QuerySet[Schedule], plan: Callable[[Schedule, datetime], Occurrence], limit: int
) -> list[tuple[str, str, Any]]:
    rows = list(due.select_for_update(skip_locked=True)[:limit])
    now = database_now()
    started = []
    for row in rows:
        occurrence = plan(row, now)
        fields: dict[str, Any] = {"next_run_at": occurrence.next_run_at, "updated_at": now}
        previous_runs = (
            row.overlap == Overlap.SKIP
            and Execution.objects.filter(pk=row.last_occurrence)
            .exclude(status__in=FINISHED_STATUSES)
            .exists()
        )
        if previous_runs:
            logger.info(
                "schedule %s: tick %s skipped, %s is unfinished (overlap skip)",
                row.task_name,
                occurrence.execution_id,
                row.last_occurrence,
            )
        else:
            execution = _pending(
                occurrence.execution_id, row.task_name, occurrence.input, occurrence.deadline, now
            )
            if _insert_unless_taken(execution):
                started.append((execution.pk, row.task_name, occurrence.input))
            fields.update(last_occurrence=execution.pk, last_run_at=occurrence.at)
        Schedule.objects.filter(pk=row.pk).update(**fields)
    if started:
        wakeups.work_is_due(len(started))
    return started


def load_schedules() -> list[Schedule]:
    """Every stored schedule, by task name: one query."""
    return list(Schedule.objects.order_by("task_name"))


def set_schedule_paused(
    task_name: str, paused: bool, next_run: Callable[[Schedule, datetime], datetime]
) -> Schedule:
    """Pause or resume ``task_name``'s schedule; a resumed one is next due at ``next_run(row,
    now)``. Raise ``ScheduleNotFound`` if none is stored."""

    def write() -> Schedule:
        row = Schedule.objects.select_for_update().filter(pk=task_name).first()
        if row is None:
            raise ScheduleNotFound(task_name)
        if row.paused != paused:
            row.paused = paused
            row.updated_at = database_now()
            if not paused:
                row.next_run_at = next_run(row, row.updated_at)
            row.save(update_fields=["paused", "next_run_at", "updated_at"])
        return row

    return _write(write)

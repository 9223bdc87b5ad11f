"""Every database operation of the engine: the only module that claims, checkpoints or parks work.

Each write made on behalf of a worker checks the lease token it claimed the execution with, so a
worker that lost its lease (it stalled, or the execution was cancelled) cannot overwrite anything.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef, Subquery

from . import clock
from .errors import (
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
    with transaction.atomic():
        Execution.objects.bulk_create([candidate], ignore_conflicts=True)
        notify()
    stored = Execution.objects.get(pk=execution_id)
    if stored.task_name != task_name:
        raise ExecutionAlreadyExists(execution_id, f"for task {stored.task_name!r}")
    if stored.input != input_data:
        raise ExecutionAlreadyExists(execution_id, "with a different input")
    return stored


def claim_due(owner: str, limit: int, lease: float) -> list[Claim]:
    """Take up to ``limit`` due executions, and running ones whose lease expired, for ``owner``.

    One statement. Its status filter is written exactly as the partial index ``zart_execution_due``
    is defined, so the database finds due work through that index however many executions are
    parked or finished.
    """
    now = clock.now()
    token = uuid.uuid4().hex
    table = Execution._meta.db_table
    active = ", ".join(f"'{status}'" for status in ACTIVE_STATUSES)
    if connection.vendor == "postgresql":
        source, lock = table, " FOR UPDATE SKIP LOCKED"
    else:
        source, lock = f"{table} INDEXED BY zart_execution_due", ""
    sql = (
        f"UPDATE {table} SET status = '{Status.RUNNING}', lease_token = %s, lease_owner = %s,"
        f" scheduled_at = %s, updated_at = %s,"
        f" recoveries = recoveries + (CASE WHEN status = '{Status.RUNNING}' THEN 1 ELSE 0 END)"
        f" WHERE id IN (SELECT id FROM {source} WHERE status IN ({active})"
        f" AND scheduled_at <= %s ORDER BY scheduled_at LIMIT %s{lock})"
        " RETURNING id, recoveries, task_name, input, deadline"
    )
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        token,
        owner[:200],
        adapt(now + timedelta(seconds=lease)),
        adapt(now),
        adapt(now),
        limit,
    ]
    return [
        Claim(e.pk, token, e.recoveries, e.task_name, e.input, e.deadline)
        for e in Execution.objects.raw(sql, params)
    ]


def load_execution(execution_id: str) -> Execution:
    try:
        return Execution.objects.get(pk=execution_id)
    except Execution.DoesNotExist:
        raise ExecutionNotFound(execution_id) from None


def load_steps(execution_id: str) -> list[StepResult]:
    """Every recorded step of the execution, in order: one query."""
    return list(StepResult.objects.filter(execution_id=execution_id).order_by("position"))


def _renew(claim: Claim, lease: float | None, **fields: Any) -> None:
    """Write ``fields`` to the execution if ``claim`` still owns it; raise ``LeaseLost`` if not."""
    now = clock.now()
    if lease is not None:
        fields["scheduled_at"] = now + timedelta(seconds=lease)
    updated = Execution.objects.filter(
        pk=claim.execution_id, lease_token=claim.token, status=Status.RUNNING
    ).update(updated_at=now, **fields)
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


def checkpoint(claim: Claim, row: StepResult, lease: float) -> None:
    """Store a step's outcome if ``claim`` still owns the execution: one statement, one commit.

    On PostgreSQL the same statement extends the lease; on SQLite the heartbeat does.
    """
    fields = [StepResult._meta.get_field(name) for name in _STEP_COLUMNS]
    values = [f.get_db_prep_save(getattr(row, f.attname), connection) for f in fields]
    columns = [connection.ops.quote_name(f.column) for f in fields]
    steps = StepResult._meta.db_table
    executions = Execution._meta.db_table
    owned = f"id = %s AND lease_token = %s AND status = '{Status.RUNNING}'"
    owner = [claim.execution_id, claim.token]
    if connection.vendor == "postgresql":
        now = clock.now()
        prefix = (
            f"WITH owned AS (UPDATE {executions} SET scheduled_at = %s, updated_at = %s"
            f" WHERE {owned} RETURNING id) "
        )
        params = [now + timedelta(seconds=lease), now, *owner]
        if row.pk is None:
            casts = ", ".join(f"CAST(%s AS {f.db_type(connection)})" for f in fields)
            sql = f"INSERT INTO {steps} ({', '.join(columns)}) SELECT {casts} FROM owned"
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
            f" WHERE EXISTS (SELECT 1 FROM {executions} WHERE {owned}) RETURNING id"
        )
        params = [*values, *owner]
    else:
        sets = ", ".join(f"{c} = %s" for c in columns)
        sql = (
            f"UPDATE {steps} SET {sets} WHERE id = %s"
            f" AND EXISTS (SELECT 1 FROM {executions} WHERE {owned}) RETURNING id"
        )
        params = [*values, row.pk, *owner]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        written = cursor.fetchone()
    if written is None:
        raise LeaseLost(claim.execution_id)
    row.pk = written[0]


def reschedule(claim: Claim, row: StepResult, due_at: datetime) -> None:
    """Store a failed attempt that will be retried and hand the execution back until ``due_at``."""
    with transaction.atomic():
        _renew(claim, None, status=Status.PENDING, scheduled_at=due_at, lease_token="")
        row.save()
        notify()


def park(claim: Claim, row: StepResult, waiting_on: str, due_at: datetime | None) -> None:
    """Store a wait and let go of the execution until ``due_at`` or until its event arrives.

    The inbox is read again under the row lock taken by the update, so an event offered while the
    worker was deciding to park makes the execution due now instead of being missed.
    """
    with transaction.atomic():
        _renew(
            claim,
            None,
            status=Status.WAITING,
            waiting_on=waiting_on,
            scheduled_at=due_at,
            lease_token="",
        )
        row.save()
        if row.kind == StepKind.EVENT and has_event(claim.execution_id, row.name):
            Execution.objects.filter(pk=claim.execution_id).update(scheduled_at=clock.now())
            notify()


def finish(claim: Claim, status: Status, output: Any = None, error: str = "") -> None:
    """End the execution with ``status`` if ``claim`` still owns it."""
    now = clock.now()
    _renew(
        claim,
        None,
        status=status,
        output=output,
        error=error,
        waiting_on="",
        scheduled_at=None,
        lease_token="",
        finished_at=now,
    )


def heartbeat(claims: Iterable[Claim], lease: float) -> None:
    """Extend the leases of executions still owned by these claims."""
    due = clock.now() + timedelta(seconds=lease)
    for claim in claims:
        Execution.objects.filter(
            pk=claim.execution_id, lease_token=claim.token, status=Status.RUNNING
        ).update(scheduled_at=due)


def expire_wait(claim: Claim, row: StepResult, lease: float) -> tuple[bool, Any]:
    """Time out an event wait whose deadline passed, unless its event arrived meanwhile.

    Under the execution's row lock (as ``offer_event`` takes it), so a delivery and the expiry
    are serialized: returns (True, payload) if the event was delivered first (the caller records
    it as received), else stores the wait as timed out and returns (False, None).
    """
    with transaction.atomic():
        _renew(claim, lease)
        found, payload = event_payload(claim.execution_id, row.name)
        if not found:
            row.save()
        return found, payload


def has_event(execution_id: str, name: str) -> bool:
    return Event.objects.filter(execution_id=execution_id, name=name).exists()


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
        with transaction.atomic():
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
            Execution.objects.filter(pk=execution_id).update(scheduled_at=now, updated_at=now)
    if parked_on_it:
        notify()
    return execution


def _deliver_and_wake(execution_id: str, name: str, payload: Any, now: datetime) -> None:
    """PostgreSQL: store the event, close the parked wait and make the execution due, in one
    statement (the writes of ``offer_event`` sit on the path from a click to the next step)."""
    json = Event._meta.get_field("payload").get_db_prep_save(payload, connection)
    sql = (
        f"WITH event AS (INSERT INTO {Event._meta.db_table} (execution_id, name, payload,"
        " created_at) VALUES (%s, %s, %s, %s)),"
        f" wait AS (UPDATE {StepResult._meta.db_table} SET status = '{StepStatus.COMPLETED}',"
        " result = %s, finished_at = %s WHERE execution_id = %s AND name = %s"
        f" AND kind = '{StepKind.EVENT}' AND status = '{StepStatus.WAITING}')"
        f" UPDATE {Execution._meta.db_table} SET scheduled_at = %s, updated_at = %s WHERE id = %s"
    )
    params = [execution_id, name, json, now, json, now, execution_id, name, now, now, execution_id]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def cancel(execution_id: str) -> None:
    """Cancel an unfinished execution for good: no worker writes to it or resumes it again.

    Refused with ``ExecutionResuming`` while a delivery to a reserved name (an approval's decision)
    completed the wait it is parked on: that decision is recorded, so the execution must act on it.
    """
    with transaction.atomic():
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

"""The physical reference: one row inserted and committed, on this database.

``insert_commit_seconds`` is the floor a checkpoint is measured against: a plain cursor
``INSERT`` in autocommit (one statement, one commit, no ORM). ``orm_create_seconds`` is the same
row through ``StepResult.objects.create``, printed beside it so the ORM's own cost shows.
"""

from __future__ import annotations

import time
import uuid

from django.db import connection
from django.utils import timezone

from zart_django.models import Execution, Status, StepKind, StepResult, StepStatus


def _owner() -> Execution:
    """A finished execution the reference rows hang from (deleted with them)."""
    now = timezone.now()
    return Execution.objects.create(
        id=f"bench-reference-{uuid.uuid4().hex}",
        task_name="bench-reference",
        status=Status.COMPLETED,
        created_at=now,
        updated_at=now,
    )


def insert_commit_seconds(rows: int) -> float:
    """Seconds per row of ``rows`` single-row cursor INSERTs into the step table, each its own
    autocommitted transaction (the connection is in autocommit, as Django leaves it)."""
    execution = _owner()
    table = connection.ops.quote_name(StepResult._meta.db_table)
    sql = (
        f"INSERT INTO {table} (execution_id, run, position, name, kind, status, result, error,"
        " attempts, type_ref, started_at, finished_at)"
        " VALUES (%s, 1, %s, %s, %s, %s, %s, '', 1, '', %s, %s)"
    )
    now = timezone.now()
    with connection.cursor() as cursor:
        start = time.perf_counter()
        for i in range(rows):
            cursor.execute(
                sql,
                [execution.pk, i, f"tick#{i + 1}", StepKind.STEP, StepStatus.COMPLETED, str(i)]
                + [now, now],
            )
        elapsed = time.perf_counter() - start
    execution.delete()
    return elapsed / rows


def orm_create_seconds(rows: int) -> float:
    """Seconds per row of ``StepResult.objects.create`` in autocommit, the same rows."""
    execution = _owner()
    now = timezone.now()
    start = time.perf_counter()
    for i in range(rows):
        StepResult.objects.create(
            execution=execution,
            position=i,
            name=f"tick#{i + 1}",
            kind=StepKind.STEP,
            status=StepStatus.COMPLETED,
            result=i,
            started_at=now,
            finished_at=now,
        )
    elapsed = time.perf_counter() - start
    execution.delete()
    return elapsed / rows

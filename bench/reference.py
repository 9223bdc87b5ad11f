"""The physical reference: how fast the ORM inserts rows, one commit each, on this database."""

from __future__ import annotations

import time
import uuid

from django.utils import timezone

from zart_django.models import Execution, Status, StepKind, StepResult, StepStatus


def insert_commit_rate(rows: int) -> float:
    """Rows per second inserted with ``StepResult.objects.create`` in autocommit.

    The rows are shaped like the engine's step checkpoints, in the same table; each insert is its
    own transaction, as each checkpoint is.
    """
    now = timezone.now()
    execution = Execution.objects.create(
        id=f"bench-reference-{uuid.uuid4().hex}",
        task_name="bench-reference",
        status=Status.COMPLETED,
        created_at=now,
        updated_at=now,
    )
    start = time.perf_counter()
    for i in range(rows):
        StepResult.objects.create(
            execution=execution,
            position=i,
            name="tick" if i == 0 else f"tick#{i + 1}",
            kind=StepKind.STEP,
            status=StepStatus.COMPLETED,
            result=i,
            started_at=now,
            finished_at=now,
        )
    elapsed = time.perf_counter() - start
    execution.delete()
    return rows / elapsed

"""Fan-out throughput: members per second of one ``parallel`` group, beside the same steps run
one after another (the single-step rate) and beside members started as executions of their own
(the other design: separate claims), all run here by ``run_until_idle`` in the same run."""

from __future__ import annotations

import time
import uuid

from django.db.models import QuerySet

from bench.workflows import fanout, sequence, single
from zart_django import DurableScheduler, DurableTask
from zart_django.models import Execution, Status
from zart_django.testing import run_until_idle


def _rate(task: DurableTask, members: int, shape: dict[str, float]) -> float:
    execution_id = f"fanout-{uuid.uuid4().hex[:8]}"
    DurableScheduler().start_for(task, execution_id, shape)
    start = time.perf_counter()
    run_until_idle()
    elapsed = time.perf_counter() - start
    _check(Execution.objects.filter(pk=execution_id))
    return members / elapsed


def _check(executions: QuerySet[Execution]) -> None:
    statuses = set(executions.values_list("status", flat=True))
    if statuses != {Status.COMPLETED}:
        raise RuntimeError(f"the fan-out executions ended {statuses}")


def group_rate(members: int, pause: float, width: int) -> float:
    """Members per second of one group of ``members`` members, ``width`` at a time."""
    shape = {"members": members, "pause": pause, "width": width}
    return _rate(fanout, members, shape)


def sequence_rate(members: int, pause: float) -> float:
    """Steps per second of the same members one after another in one execution."""
    return _rate(sequence, members, {"members": members, "pause": pause, "width": 1})


def separate_rate(members: int) -> float:
    """Members per second when each no-op member is an execution of its own, claimed and run."""
    prefix = f"single-{uuid.uuid4().hex[:8]}-"
    scheduler = DurableScheduler()
    for i in range(members):
        scheduler.start_for(single, f"{prefix}{i}", i)
    start = time.perf_counter()
    run_until_idle()
    elapsed = time.perf_counter() - start
    _check(Execution.objects.filter(id__startswith=prefix))
    return members / elapsed

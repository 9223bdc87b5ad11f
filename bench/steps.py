"""Target (a): one step end to end inside a 1000-step workflow run by one worker process, beside
the database's own single-row insert+commit, measured in alternation.

The step body is a no-op (``tick`` returns its argument), so the figure is the engine's cost per
step: the call, the checkpoint statement and its commit, the bookkeeping around them. The wall
time runs from the first step's start to the last step's end as the worker recorded them, so the
worker's pick-up of the new execution (target (c)'s business) is left out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db.models import Max, Min

from bench.reference import insert_commit_seconds, orm_create_seconds
from bench.timing import median, poll
from bench.workers import WorkerPool
from bench.workflows import chain
from zart_django import DurableScheduler
from zart_django.models import ACTIVE_STATUSES, Execution, Status, StepResult


@dataclass(frozen=True)
class StepCost:
    """Medians over the rounds, in seconds per step or per row, and every round's step time."""

    step: float
    insert: float
    orm: float
    rounds: list[float]


def step_seconds(steps: int) -> float:
    """Seconds per step of one ``steps``-step ``bench-chain`` execution on the running worker."""
    execution_id = f"chain-{uuid.uuid4().hex[:8]}"
    DurableScheduler().start_for(chain, execution_id, steps)
    mine = Execution.objects.filter(pk=execution_id)
    poll(lambda: mine.exclude(status__in=ACTIVE_STATUSES).exists(), "the chain", 600, 0.02)
    status = mine.values_list("status", flat=True).get()
    if status != Status.COMPLETED:
        raise RuntimeError(f"the chain execution ended {status}")
    span = StepResult.objects.filter(execution_id=execution_id).aggregate(
        first=Min("started_at"), last=Max("finished_at")
    )
    return (span["last"] - span["first"]).total_seconds() / steps


def step_cost(steps: int, rounds: int, reference_rows: int) -> StepCost:
    """``rounds`` rounds of: raw inserts, ORM creates, one chain, ORM creates, raw inserts (half
    the rows each time, so the references bracket the chain); keep the medians."""
    step: list[float] = []
    insert: list[float] = []
    orm: list[float] = []
    half = max(1, reference_rows // 2)
    with WorkerPool(1):
        for _ in range(rounds):
            before = insert_commit_seconds(half), orm_create_seconds(half)
            step.append(step_seconds(steps))
            after = orm_create_seconds(half), insert_commit_seconds(half)
            insert.append((before[0] + after[1]) / 2)
            orm.append((before[1] + after[0]) / 2)
    return StepCost(median(step), median(insert), median(orm), step)

"""What one resume costs as the recorded history grows: time and queries."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.timing import median
from bench.workflows import resume_probe
from zart_django import DurableScheduler, default_registry, store
from zart_django.models import Status, StepResult
from zart_django.replay import run_execution
from zart_django.testing import run_until_idle


@dataclass(frozen=True)
class ResumeCost:
    """One resume of an execution with ``steps`` recorded steps, after its event arrived."""

    steps: int
    seconds: float
    queries: int
    step_queries: int


def resume_cost(steps: int, repeats: int) -> ResumeCost:
    """Record ``steps`` steps and a wait in ``repeats + 1`` executions, then resume each one.

    The first resume counts queries (``CaptureQueriesContext``); the others are timed, with no
    query capture in the way, and the median is kept.
    """
    scheduler = DurableScheduler()
    ids = [f"resume-{steps}-{uuid.uuid4().hex[:8]}-{r}" for r in range(repeats + 1)]
    for execution_id in ids:
        scheduler.start_for(resume_probe, execution_id, steps)
    run_until_idle()
    first = _claim(ids[0])
    with CaptureQueriesContext(connection) as captured:
        _run(first)
    times = [_run(_claim(execution_id)) for execution_id in ids[1:]]
    step_table = StepResult._meta.db_table
    step_queries = sum(
        1
        for q in captured.captured_queries
        if q["sql"].startswith("SELECT") and f'FROM "{step_table}"' in q["sql"]
    )
    return ResumeCost(steps, median(times), len(captured.captured_queries), step_queries)


def _claim(execution_id: str) -> store.Claim:
    """Offer the execution its event and claim it (the only execution due)."""
    DurableScheduler().offer_event(execution_id, "go")
    (claim,) = store.claim_due("bench", 1, 30, tasks=default_registry.names())
    if claim.execution_id != execution_id:
        raise RuntimeError(f"claimed {claim.execution_id}, expected {execution_id}")
    return claim


def _run(claim: store.Claim) -> float:
    """Seconds the resumed run takes to replay the history and finish the execution."""
    start = time.perf_counter()
    status = run_execution(claim, default_registry)
    elapsed = time.perf_counter() - start
    if status != Status.COMPLETED:
        raise RuntimeError(f"{claim.execution_id} ended {status} after its resume")
    return elapsed

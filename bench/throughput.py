"""Approval workflows per second, start to complete, run by real worker processes.

The client (this process) starts every execution and offers each its approval, either right after
starting it (as the DBOS side of target (b) sends its decision: the inbox keeps an event that
comes before its wait) or once the execution has parked on the wait (which costs a park and a
second claim each), and stops the clock when the last one completes.
"""

from __future__ import annotations

import time
import uuid

from django.db.models import QuerySet

from bench.timing import poll
from bench.workers import WorkerPool
from bench.workflows import Decision, Request, approval
from zart_django import DurableScheduler
from zart_django.models import ACTIVE_STATUSES, Execution, Status

_TIMEOUT = 300.0


def approvals_per_second(processes: int, count: int, decide_at_start: bool = True) -> float:
    """Run ``count`` approvals on ``processes`` worker processes; return completions per second.

    ``decide_at_start``: each decision is offered right after its start; otherwise once its
    execution has parked on the wait."""
    scheduler = DurableScheduler()
    prefix = f"approval-{uuid.uuid4().hex[:8]}-"
    mine = Execution.objects.filter(id__startswith=prefix)
    decision = Decision(True, "bench")
    with WorkerPool(processes):
        start = time.perf_counter()
        for i in range(count):
            scheduler.start_for(approval, f"{prefix}{i}", Request("bench", 100))
            if decide_at_start:
                scheduler.offer_event(f"{prefix}{i}", "approval", decision)
        offered: set[str] = set()
        while not decide_at_start and len(offered) < count:
            parked = set(mine.filter(status=Status.WAITING).values_list("id", flat=True)) - offered
            for execution_id in parked:
                scheduler.offer_event(execution_id, "approval", decision)
            offered |= parked
            if not parked:
                _check(mine, start)
                time.sleep(0.005)
        poll(lambda: _check(mine, start) == count, "the approvals to complete", _TIMEOUT, 0.005)
        elapsed = time.perf_counter() - start
    return count / elapsed


def _check(mine: QuerySet[Execution], start: float) -> int:
    """How many of ``mine`` completed; raise if one ended otherwise or the run takes too long."""
    ended = mine.exclude(status__in=ACTIVE_STATUSES)
    failed = list(ended.exclude(status=Status.COMPLETED).values_list("id", "status", "error")[:3])
    if failed:
        raise RuntimeError(f"approvals did not complete: {failed}")
    if time.perf_counter() - start > _TIMEOUT:
        raise TimeoutError(f"the approvals took over {_TIMEOUT:.0f}s")
    return ended.count()

"""Target (c): from ``offer_event`` to the first step after the wait, with a live worker process,
over several runs; and how many idle workers one due execution wakes."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from functools import partial

from bench.timing import median, percentile, poll
from bench.workers import WorkerPool
from bench.workflows import latency_probe, single
from zart_django import DurableScheduler
from zart_django.models import ACTIVE_STATUSES, Execution, Status, StepResult

IDLE_POLL = 30.0
"""The idle workers' poll interval while wake-ups are counted: no poll falls in a sample."""


@dataclass(frozen=True)
class LatencyRun:
    """One run's samples, in seconds."""

    p50: float
    p95: float
    samples: list[float]


def offer_to_step(samples: int, poll_interval: float) -> LatencyRun:
    """Seconds from just before ``offer_event`` to the start of the step after the wait, on a
    fresh worker process.

    One execution at a time: it is started and parks on its wait; after a random pause of up to
    ``poll_interval`` (a person's decision does not arrive in step with the worker's polls) its
    event is offered. The step after the wait records the wall-clock time its body started (the
    worker is another process on the same machine, so the clocks agree).
    """
    scheduler = DurableScheduler()
    latencies: list[float] = []
    with WorkerPool(1):
        for i in range(samples):
            execution_id = f"latency-{uuid.uuid4().hex[:8]}-{i}"
            scheduler.start_for(latency_probe, execution_id, "probe")
            poll(partial(_parked, execution_id), f"{execution_id} to park")
            time.sleep(random.uniform(0, poll_interval))
            offered = time.time()
            scheduler.offer_event(execution_id, "go")
            # The step records when it started, so polling slowly does not change the figure;
            # polling fast would take CPU from the worker on a small machine.
            woke = poll(
                partial(_woke_at, execution_id), f"{execution_id} to pass its wait", every=0.05
            )
            latencies.append(woke - offered)
    return LatencyRun(median(latencies), percentile(latencies, 95), latencies)


def latency_runs(runs: int, samples: int, poll_interval: float) -> list[LatencyRun]:
    """``runs`` runs of ``offer_to_step``, each on its own worker process."""
    return [offer_to_step(samples, poll_interval) for _ in range(runs)]


@dataclass(frozen=True)
class Wakeups:
    """Per sample: how many of the idle workers called ``claim_due`` after the execution became
    due, how many calls they made in all, and whether it ran within the window."""

    workers: int
    woken: list[int]
    claim_calls: list[int]
    ran: list[bool]


def wakeups(workers: int, samples: int, window: float = 3.0) -> Wakeups:
    """Start ``workers`` idle worker processes (polling only every ``IDLE_POLL`` seconds), then
    ``samples`` times make one execution due and count, from the workers' logs, which of them
    tried to claim within ``window`` seconds (and 0.3 s more for stragglers). One woken worker is
    the target; a worker that is not woken at all finds the work at its next poll only."""
    scheduler = DurableScheduler()
    woken: list[int] = []
    calls: list[int] = []
    ran: list[bool] = []
    with WorkerPool(workers, ["--poll-interval", str(IDLE_POLL)]) as pool:
        time.sleep(0.5)  # each worker's first pass (a claim) is over: all idle
        for i in range(samples):
            before = pool.claims()
            execution_id = f"wake-{uuid.uuid4().hex[:8]}-{i}"
            scheduler.start_for(single, execution_id, i)
            done = _finished_within(execution_id, window)
            time.sleep(0.3)
            after = pool.claims()
            woken.append(sum(1 for b, a in zip(before, after, strict=True) if a > b))
            calls.append(sum(after) - sum(before))
            ran.append(done)
            if not done:
                break  # it waits for a poll: the next sample would count that poll
    return Wakeups(workers, woken, calls, ran)


def _finished_within(execution_id: str, window: float) -> bool:
    mine = Execution.objects.filter(pk=execution_id)
    limit = time.monotonic() + window
    while time.monotonic() < limit:
        if mine.exclude(status__in=ACTIVE_STATUSES).exists():
            return True
        time.sleep(0.01)
    return False


def _parked(execution_id: str) -> bool:
    return Execution.objects.filter(pk=execution_id, status=Status.WAITING).exists()


def _woke_at(execution_id: str) -> float | None:
    """When the step after the wait started (its recorded result), or None if it has not run."""
    return (
        StepResult.objects.filter(execution_id=execution_id, name="woke")
        .values_list("result", flat=True)
        .first()
    )

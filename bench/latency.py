"""From ``offer_event`` to the first step after the wait, with a live worker process."""

from __future__ import annotations

import random
import time
import uuid
from functools import partial

from bench.timing import poll
from bench.workers import WorkerPool
from bench.workflows import latency_probe
from zart_django import DurableScheduler
from zart_django.models import Execution, Status, StepResult


def offer_to_step(samples: int, poll_interval: float) -> list[float]:
    """Seconds from just before ``offer_event`` to the start of the step after the wait.

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
    return latencies


def _parked(execution_id: str) -> bool:
    return Execution.objects.filter(pk=execution_id, status=Status.WAITING).exists()


def _woke_at(execution_id: str) -> float | None:
    """When the step after the wait started (its recorded result), or None if it has not run."""
    return (
        StepResult.objects.filter(execution_id=execution_id, name="woke")
        .values_list("result", flat=True)
        .first()
    )

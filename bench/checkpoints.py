"""Step checkpoints per second, beside raw ORM insert+commit rows per second on the same table."""

from __future__ import annotations

import time
import uuid

from bench.reference import insert_commit_rate
from bench.timing import median
from bench.workflows import chain
from zart_django import DurableScheduler
from zart_django.models import Execution, Status
from zart_django.testing import run_until_idle


def checkpoint_rate(steps: int) -> float:
    """Steps per second of one execution of ``steps`` steps, run here by ``run_until_idle``."""
    execution_id = f"chain-{uuid.uuid4().hex[:8]}"
    DurableScheduler().start_for(chain, execution_id, steps)
    start = time.perf_counter()
    run_until_idle()
    elapsed = time.perf_counter() - start
    status = Execution.objects.get(pk=execution_id).status
    if status != Status.COMPLETED:
        raise RuntimeError(f"the chain execution ended {status}")
    return steps / elapsed


def compare(steps: int, rounds: int) -> tuple[float, float]:
    """(median checkpoint rate, median raw insert rate), measured in alternation ``rounds`` times."""
    engine: list[float] = []
    raw: list[float] = []
    for _ in range(rounds):
        raw.append(insert_commit_rate(steps))
        engine.append(checkpoint_rate(steps))
    return median(engine), median(raw)

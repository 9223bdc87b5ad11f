"""Target (d): I/O-bound steps (each waits 50 ms in ``time.sleep``, as a call to another service
would) on one worker process of concurrency 32, then on several such processes.

Each measurement starts its worker processes, then (clock started) starts ``executions`` of
``bench-io`` with ``steps`` steps each, and stops the clock when the last one completed. Every
step body appends a line to a ledger file; a line seen twice is a step body run twice.
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from bench.timing import poll
from bench.workers import WorkerPool
from bench.workflows import io_bound
from zart_django import DurableScheduler
from zart_django.models import ACTIVE_STATUSES, Execution, Status

PAUSE = 0.05  # seconds each step waits
CONCURRENCY = 32  # executions each worker process runs at once
POOL = 8  # connections in each worker process's pool on PostgreSQL (Django's pool option)


@dataclass(frozen=True)
class IoRun:
    """One measurement: steps per second, and step bodies run (``bodies``) against ``steps``."""

    processes: int
    rate: float
    steps: int
    bodies: int
    doubles: int


def io_rate(processes: int, executions: int, steps: int) -> IoRun:
    """Steps per second of ``executions`` × ``steps`` I/O-bound steps on ``processes`` workers."""
    ledger = Path(settings.BASE_DIR) / "var" / f"bench-io-{uuid.uuid4().hex[:8]}.ledger"
    prefix = f"io-{uuid.uuid4().hex[:8]}-"
    mine = Execution.objects.filter(id__startswith=prefix)
    scheduler = DurableScheduler()
    with _pooled(), WorkerPool(processes, ["--concurrency", str(CONCURRENCY)]):
        start = time.perf_counter()
        for i in range(executions):
            label = f"{prefix}{i}"
            shape = {"label": label, "steps": steps, "pause": PAUSE, "ledger": str(ledger)}
            scheduler.start_for(io_bound, label, shape)
        poll(
            lambda: not mine.filter(status__in=ACTIVE_STATUSES).exists(),
            "the I/O-bound executions",
            600,
            0.01,
        )
        elapsed = time.perf_counter() - start
    failed = mine.exclude(status=Status.COMPLETED).count()
    if failed:
        raise RuntimeError(f"{failed} I/O-bound executions did not complete")
    lines = Counter(ledger.read_text().splitlines())
    ledger.unlink()
    total = executions * steps
    return IoRun(
        processes, total / elapsed, total, sum(lines.values()), sum(n - 1 for n in lines.values())
    )


@contextmanager
def _pooled() -> Iterator[None]:
    """Worker processes started meanwhile use a connection pool of ``POOL`` (PostgreSQL)."""
    os.environ["ZART_BENCH_POOL"] = str(POOL)
    try:
        yield
    finally:
        del os.environ["ZART_BENCH_POOL"]


def connections_needed(processes: int) -> int:
    """Database connections ``processes`` workers hold at most on PostgreSQL: their pool's and
    each one's listener."""
    return processes * (POOL + 1)

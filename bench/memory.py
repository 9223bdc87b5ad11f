"""Target (f): a worker's memory stays steady: its resident set (RSS, from ``/proc``) after
``late`` executions beside it after ``early`` (1,000), on one worker process.

The executions are ``bench-single`` (one no-op step), started by this process in batches while
the worker runs them, never more than two batches ahead of it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.db.models import QuerySet

from bench.timing import poll
from bench.workers import WorkerPool
from bench.workflows import single
from zart_django import DurableScheduler
from zart_django.models import Execution, Status

BATCH = 500


@dataclass(frozen=True)
class Memory:
    """The worker's RSS in MiB after ``early`` and after ``late`` completed executions."""

    early: int
    late: int
    early_mib: float
    late_mib: float


def rss_mib(pid: int) -> float:
    """The resident set of process ``pid`` in MiB (``VmRSS`` in ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def steady_memory(early: int, late: int) -> Memory:
    """Run ``late`` executions on one worker; its RSS once ``early`` and once ``late`` completed."""
    prefix = f"mem-{uuid.uuid4().hex[:8]}-"
    mine = Execution.objects.filter(id__startswith=prefix)
    scheduler = DurableScheduler()
    readings: dict[int, float] = {}
    with WorkerPool(1) as pool:
        (pid,) = pool.pids
        started = 0
        for mark in (early, late):
            while started < mark:
                batch = min(BATCH, mark - started)
                for i in range(started, started + batch):
                    scheduler.start_for(single, f"{prefix}{i}", i)
                started += batch
                floor = max(0, started - 2 * BATCH) if started < mark else started
                _wait_completed(mine, floor)
            time.sleep(0.5)  # the worker's last run has returned its memory
            readings[mark] = rss_mib(pid)
    failed = mine.exclude(status=Status.COMPLETED).count()
    if failed:
        raise RuntimeError(f"{failed} executions did not complete")
    return Memory(early, late, readings[early], readings[late])


def _wait_completed(mine: QuerySet[Execution], count: int) -> None:
    poll(
        lambda: mine.filter(status=Status.COMPLETED).count() >= count,
        f"{count} executions to complete",
        1800,
        0.05,
    )

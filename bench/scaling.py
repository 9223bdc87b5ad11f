"""Target (d): I/O-bound steps (each waits 50 ms in ``time.sleep``, as a call to another service
would) on one worker process of concurrency 32, then on several such processes.

Each measurement starts ``executions`` of ``bench-io`` (``steps`` steps each) before its worker
processes, held back (due in a day), starts the workers and warms them up (each runs
``CONCURRENCY`` one-step executions, so its threads and their connections exist, as in a worker
that has been running a while), then makes the held-back executions due all at once and waits
until the last one completed. Every step body appends a line with the time it ended to a ledger
file: a line seen twice is a step body run twice, and the times give the rate between the 10th
and the 90th percentile of the bodies (the rate once every thread is busy, without the
start and the stragglers). The whole run's rate, from the moment they became due to the last
completion, is kept beside it, and so is the rate the old method measured: the client starting
the executions one by one with the clock running (``start_for`` costs several ms each, a large
share of a run of a few seconds, and its CPU competes with the workers').
"""

from __future__ import annotations

import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from bench.timing import poll
from bench.workers import WorkerPool
from bench.workflows import io_bound
from zart_django import DurableScheduler
from zart_django.models import ACTIVE_STATUSES, Execution, Status

PAUSE = 0.05  # seconds each step waits
CONCURRENCY = 32  # executions each worker process runs at once
POOL = 8  # connections in each worker process's pool on PostgreSQL (Django's pool option)
WARM_UP_PAUSE = 0.5  # seconds the warm-up's one step waits: long enough that every worker gets some


@dataclass(frozen=True)
class IoRun:
    """One measurement: steps per second between the 10th and the 90th percentile of the bodies'
    ends (``rate``) and over the whole run (``whole_rate``), step bodies run (``bodies``)
    against ``steps``, and the CPU seconds the workers, the client and the database server used
    meanwhile (``cpu``, also per step in ``cpu_ms_per_step``)."""

    processes: int
    rate: float
    whole_rate: float
    steps: int
    bodies: int
    doubles: int
    seconds: float
    cpu: dict[str, float]
    cpu_ms_per_step: dict[str, float]


def io_rate(processes: int, executions: int, steps: int) -> IoRun:
    """Steps per second of ``executions`` × ``steps`` I/O-bound steps on ``processes`` workers."""
    ledger = _ledger()
    mine = _start(executions, steps, ledger, held_back=True)
    with _pooled(), WorkerPool(processes, ["--concurrency", str(CONCURRENCY)]) as pool:
        _warm_up(processes)
        cpu_before = _cpu_seconds(pool.pids)
        start = time.perf_counter()
        mine.update(scheduled_at=timezone.now())
        _wait_for(mine)
        elapsed = time.perf_counter() - start
        cpu = {k: v - cpu_before[k] for k, v in _cpu_seconds(pool.pids).items()}
    total = executions * steps
    ends, runs = _read(ledger, mine)
    return IoRun(
        processes,
        _steady_rate(ends),
        total / elapsed,
        total,
        sum(runs.values()),
        sum(n - 1 for n in runs.values()),
        elapsed,
        cpu,
        {k: v / total * 1000 for k, v in cpu.items()},
    )


def started_with_the_clock(processes: int, executions: int, steps: int) -> float:
    """Steps per second as measured before: the workers started (not warmed up), then, clock
    running, the client starts the executions one by one; until the last one completed."""
    ledger = _ledger()
    with _pooled(), WorkerPool(processes, ["--concurrency", str(CONCURRENCY)]):
        start = time.perf_counter()
        mine = _start(executions, steps, ledger, held_back=False)
        _wait_for(mine)
        elapsed = time.perf_counter() - start
    _read(ledger, mine)
    return executions * steps / elapsed


def _ledger() -> Path:
    return Path(settings.BASE_DIR) / "var" / f"bench-io-{uuid.uuid4().hex[:8]}.ledger"


def _start(
    executions: int, steps: int, ledger: Path, held_back: bool, pause: float = PAUSE
) -> QuerySet[Execution]:
    """Start ``executions`` of ``bench-io``; ``held_back`` (before the workers start): then
    make them due in a day, not now."""
    prefix = f"io-{uuid.uuid4().hex[:8]}-"
    mine = Execution.objects.filter(id__startswith=prefix)
    scheduler = DurableScheduler()
    for i in range(executions):
        label = f"{prefix}{i}"
        shape = {"label": label, "steps": steps, "pause": pause, "ledger": str(ledger)}
        scheduler.start_for(io_bound, label, shape)
    if held_back:  # no worker runs yet: nothing was claimed
        mine.update(scheduled_at=timezone.now() + timedelta(days=1))
    return mine


def _warm_up(processes: int) -> None:
    """Run ``CONCURRENCY`` one-step executions per worker process, each long enough that the
    first worker to claim cannot take more than its share: every thread and pooled connection
    of every worker is made before the measurement."""
    ledger = _ledger()
    _wait_for(_start(CONCURRENCY * processes, 1, ledger, held_back=False, pause=WARM_UP_PAUSE))
    ledger.unlink()


def _wait_for(mine: QuerySet[Execution]) -> None:
    poll(
        lambda: not mine.filter(status__in=ACTIVE_STATUSES).exists(),
        "the I/O-bound executions",
        600,
        0.01,
    )
    failed = mine.exclude(status=Status.COMPLETED).count()
    if failed:
        raise RuntimeError(f"{failed} I/O-bound executions did not complete")


def _read(ledger: Path, mine: QuerySet[Execution]) -> tuple[list[float], Counter[str]]:
    """The ledger's end times, sorted, and how many times each body ran; the ledger is removed."""
    lines = [line.rsplit(" ", 1) for line in ledger.read_text().splitlines()]
    ledger.unlink()
    return sorted(float(at) for _, at in lines), Counter(body for body, _ in lines)


def _steady_rate(ends: list[float]) -> float:
    """Bodies per second between the 10th and the 90th percentile of their (sorted) ends."""
    first, last = len(ends) // 10, len(ends) * 9 // 10
    return (last - first) / (ends[last] - ends[first])


def _cpu_seconds(workers: list[int]) -> dict[str, float]:
    """CPU seconds used so far by the worker processes, this process (the client) and, on
    PostgreSQL, the server's processes for this database and its WAL writer."""
    seconds = {"workers": sum(_process_cpu(pid) for pid in workers)}
    seconds["client"] = time.process_time()
    server = server_cpu()
    if server is not None:
        seconds["server"] = server
    return seconds


def server_cpu() -> float | None:
    """CPU seconds used so far by the PostgreSQL server's processes for this database and its
    WAL writer; None on SQLite (no server)."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " OR backend_type = 'walwriter'"
        )
        return sum(_process_cpu(pid) for (pid,) in cursor.fetchall())


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

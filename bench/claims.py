"""How long ``store.claim_due`` takes as parked executions pile up (10k, then 1M)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import rows
from bench.timing import median, percentile
from zart_django import store

_DUE = [f"due-{i}" for i in range(10)]


@dataclass(frozen=True)
class ClaimTimes:
    """Median and p95 seconds of one ``claim_due`` call, with nothing due and with 10 due."""

    parked: int
    empty_p50: float
    empty_p95: float
    due_p50: float
    due_p95: float


def claim_times(small: int, large: int, repeats: int) -> tuple[ClaimTimes, ClaimTimes]:
    """Claim latencies with ``small`` parked executions, then with ``large``; empties the tables."""
    rows.clear()
    rows.insert_parked(0, small)
    at_small = _measure(small, repeats)
    rows.insert_parked(small, large)
    at_large = _measure(large, repeats)
    rows.clear()
    return at_small, at_large


def _measure(parked: int, repeats: int) -> ClaimTimes:
    empty = [_timed_claim(0) for _ in range(repeats)]
    due = []
    for _ in range(repeats):
        rows.make_due(_DUE)
        due.append(_timed_claim(len(_DUE)))
    rows.delete(_DUE)
    return ClaimTimes(
        parked, median(empty), percentile(empty, 95), median(due), percentile(due, 95)
    )


def _timed_claim(expected: int) -> float:
    start = time.perf_counter()
    claims = store.claim_due("bench", len(_DUE), 30, tasks=["bench-approval"])
    elapsed = time.perf_counter() - start
    if len(claims) != expected:
        raise RuntimeError(f"claim_due took {len(claims)} executions, expected {expected}")
    return elapsed

"""How long ``store.claim_due`` takes with few parked executions (10k) and with many (1M).

The small size is measured before and after the large one (10k, 1M, 10k again: the table is
emptied and refilled), each measurement after a warm-up, and the two small runs are pooled, so
neither size always has the cold cache or the first place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from bench import rows
from bench.timing import median, percentile
from zart_django import store

_DUE = [f"due-{i}" for i in range(10)]
_WARM_UP = 10


@dataclass(frozen=True)
class ClaimTimes:
    """Median and p95 seconds of one ``claim_due`` call, with nothing due and with 10 due."""

    parked: int
    empty_p50: float
    empty_p95: float
    due_p50: float
    due_p95: float


def claim_times(small: int, large: int, repeats: int) -> tuple[ClaimTimes, ClaimTimes]:
    """Claim latencies with ``small`` parked executions (before and after) and with ``large``;
    empties the tables."""
    rows.clear()
    rows.insert_parked(0, small)
    before = _measure(repeats)
    rows.insert_parked(small, large)
    at_large = _measure(repeats)
    rows.clear()
    rows.insert_parked(0, small)
    after = _measure(repeats)
    rows.clear()
    empty = before[0] + after[0]
    due = before[1] + after[1]
    return _times(small, empty, due), _times(large, *at_large)


def _times(parked: int, empty: list[float], due: list[float]) -> ClaimTimes:
    return ClaimTimes(
        parked, median(empty), percentile(empty, 95), median(due), percentile(due, 95)
    )


def _measure(repeats: int) -> tuple[list[float], list[float]]:
    """(seconds with nothing due, seconds with 10 due), ``repeats`` each, after a warm-up."""
    for _ in range(_WARM_UP):
        _timed_claim(0)
    empty = [_timed_claim(0) for _ in range(repeats)]
    due = []
    for _ in range(repeats):
        rows.make_due(_DUE)
        due.append(_timed_claim(len(_DUE)))
    rows.delete(_DUE)
    return empty, due


def _timed_claim(expected: int) -> float:
    start = time.perf_counter()
    claims = store.claim_due("bench", len(_DUE), 30, tasks=["bench-approval"])
    elapsed = time.perf_counter() - start
    if len(claims) != expected:
        raise RuntimeError(f"claim_due took {len(claims)} executions, expected {expected}")
    return elapsed

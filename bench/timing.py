"""Small statistics and polling helpers shared by the measurements."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def percentile(samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q ≤ 100) of ``samples``."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def median(samples: Sequence[float]) -> float:
    return percentile(samples, 50)


def spread(samples: Sequence[float], scale: float = 1.0) -> dict[str, float]:
    """The median, minimum and maximum of ``samples`` (each times ``scale``), for a figure's details."""
    return {
        "median": median(samples) * scale,
        "min": min(samples) * scale,
        "max": max(samples) * scale,
        "runs": len(samples),
    }


def poll(fetch: Callable[[], T | None], what: str, timeout: float = 120, every: float = 0.002) -> T:
    """Call ``fetch`` every ``every`` seconds until it returns something other than None/False."""
    limit = time.monotonic() + timeout
    while True:
        value = fetch()
        if value is not None and value is not False:
            return value
        if time.monotonic() >= limit:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)

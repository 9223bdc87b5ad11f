"""Durable tasks with parallel steps, for ``test_parallel.py``. Member bodies log "start price N"
and "done price N" to the job's log, so a test counts how often each body ran, across crashes."""

from __future__ import annotations

import functools
import threading
import time

from demo_project.approval import quotes  # noqa: F401  (registers the demo's "quote")
from tests.workflows import Job, attempt, hold_if_asked, lines, record, square
from zart_django import RetryPolicy, StepFailed, durable, parallel, step

THREADS_SEEN: list[int] = []
"""How many member threads were alive as each ``noop`` body ran (the 1,000-member test reads
the peak)."""


@step("price")
def price(job: Job, n: int) -> int:
    """Member ``n``: waits while ``<log>.hold-price-N`` exists; with ``job.name == "reverse"``
    it also waits until member ``n + 1`` has finished, so the members finish in reverse order."""
    record(job, f"start price {n}")
    hold_if_asked(job, f"price-{n}")
    if job.name == "reverse" and n + 1 < len(job.items):
        _wait_for(job, f"done price {n + 1}")
    record(job, f"done price {n}")
    return n * 10


def _wait_for(job: Job, line: str) -> None:
    limit = time.monotonic() + 30
    while f"{job.name} {line}" not in lines(job.log) and time.monotonic() < limit:
        time.sleep(0.01)


@durable("fan-out")
def fan_out(job: Job) -> list[int]:
    """A group of ``price`` members, one per item, then a step after it."""
    prices = parallel(*(functools.partial(price, job, n) for n in job.items), max_concurrency=8)
    return [*prices, square(job, 2)]


@step("shaky", retry=RetryPolicy.fixed(2, "1s"))
def shaky(job: Job, n: int) -> int:
    """Fails its first ``job.fail_times`` attempts."""
    number = attempt(job, f"shaky {n}")
    if number <= job.fail_times:
        raise ConnectionError(f"shaky {n} failed on attempt {number}")
    return n


@durable("fan-out-shaky")
def fan_out_shaky(job: Job) -> str:
    """price 1, a shaky member, price 3 in one group; a failure is caught and reported."""
    calls = (
        functools.partial(price, job, 1),
        lambda: shaky(job, 2),
        functools.partial(price, job, 3),
    )
    try:
        results = parallel(*calls)
    except StepFailed as exc:
        return f"{exc.step} failed after {exc.attempts} attempts: {exc.error}"
    return f"results {results}"


@durable("fan-out-failing")
def fan_out_failing(job: Job) -> list[int]:
    """price 1, shaky 2, price 3, shaky 4 in one group; a failure fails the execution."""
    return parallel(
        functools.partial(price, job, 1),
        lambda: shaky(job, 2),
        functools.partial(price, job, 3),
        lambda: shaky(job, 4),
    )


@step("noop")
def noop(n: int) -> int:
    members = [t for t in threading.enumerate() if t.name.startswith("zart-parallel-")]
    THREADS_SEEN.append(len(members))
    return n


@durable("fan-out-noop")
def fan_out_noop(count: int) -> list[int]:
    return parallel(*(functools.partial(noop, n) for n in range(count)))


@step("lonely")
def lonely() -> str:
    return "lonely"


@durable("fan-out-misused")
def fan_out_misused(kind: str) -> str:
    """Members that are not one step each: refused with a clear error."""
    if kind == "no-step":
        parallel(lambda: 1)
    elif kind == "not-callable":
        parallel(lonely())  # type: ignore[arg-type]
    elif kind == "zero":
        parallel(lonely, max_concurrency=0)
    return "unreachable"


@durable("fan-out-empty")
def fan_out_empty(job: Job) -> list[int]:
    return parallel()

"""``async def`` durable tasks and steps, for ``test_async.py`` and ``test_async_workers.py``.
Step bodies log "start X" and "done X" to the job's log, as in ``tests.workflows``, so a test
counts how often each body ran, across crashes; holds are awaited, so a held body blocks no
thread."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable
from pathlib import Path

from tests.workflows import Approval, Job, attempt, record, square
from zart_django import (
    Failure,
    RetryPolicy,
    StepFailed,
    capture,
    durable,
    now,
    parallel,
    patched,
    random,
    run_child,
    sleep,
    start_child,
    step,
    uuid4,
    wait_for_any,
    wait_for_child,
    wait_for_event,
)
from zart_django.approvals import wait_for_approval


async def hold_if_asked(job: Job, point: str) -> None:
    """Await while the file ``<log>.hold-<point>`` exists (a test kills a worker meanwhile)."""
    hold = Path(f"{job.log}.hold-{point}")
    limit = time.monotonic() + 60
    while hold.exists() and time.monotonic() < limit:
        await asyncio.sleep(0.02)


async def _body(job: Job, name: str) -> str:
    record(job, f"start {name}")
    await hold_if_asked(job, name)
    record(job, f"done {name}")
    return f"{name} ok"


@step("a-first")
async def a_first(job: Job) -> str:
    return await _body(job, "a-first")


@step("a-second")
async def a_second(job: Job) -> str:
    return await _body(job, "a-second")


@step("a-plain")
def a_plain(job: Job, approval: Approval) -> str:
    """A plain step, awaited from the async function: its body runs on an engine thread."""
    record(job, "start a-plain")
    record(job, "done a-plain")
    return f"a-plain ok by {approval.reviewer}"


@durable("async-three-steps", events={"go": Approval})
async def async_three_steps(job: Job) -> dict:
    """Two async steps, a wait for "go", a plain step."""
    a = await a_first(job)
    b = await a_second(job)
    approval = await wait_for_event("go")
    c = await a_plain(job, approval)
    return {"results": [a, b, c], "approved": approval.approved}


@step("a-flaky", retry=RetryPolicy.fixed(3, "1s"))
async def a_flaky(job: Job) -> str:
    number = attempt(job, "a-flaky")
    await asyncio.sleep(0)
    if number <= job.fail_times:
        raise ConnectionError(f"attempt {number} failed")
    return f"succeeded on attempt {number}"


async def or_gave_up(result: Awaitable[str]) -> str:
    """The step's result, or why it gave up (``StepFailed``)."""
    try:
        return await result
    except StepFailed as exc:
        return f"gave up: {exc}"


@durable("async-retrying")
async def async_retrying(job: Job) -> str:
    return await or_gave_up(a_flaky(job))


@step("a-slow", retry=RetryPolicy.fixed(3, "1s"), timeout="0.2s")
async def a_slow(job: Job) -> str:
    """Runs past its timeout on its first ``job.fail_times`` attempts."""
    number = attempt(job, "a-slow")
    if number <= job.fail_times:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            record(job, f"cancelled a-slow {number}")
            raise
    return f"in time on attempt {number}"


@durable("async-slow")
async def async_slow(job: Job) -> str:
    return await or_gave_up(a_slow(job))


@durable("sync-calls-async-step")
def sync_calls_async_step(job: Job) -> str:
    """A plain durable function that calls an async step: refused with TypeError."""
    return a_first(job)


@durable("async-gathers")
async def async_gathers(job: Job) -> list[str]:
    """Two steps awaited at once with asyncio.gather: refused (one at a time, or parallel)."""
    return list(await asyncio.gather(a_first(job), a_second(job)))


@step("a-price")
async def a_price(job: Job, n: int) -> int:
    await _body(job, f"a-price {n}")
    return n * 10


@durable("async-fan-out")
async def async_fan_out(job: Job) -> list[int]:
    """A group of async members and one plain member, then a plain step."""
    calls = [functools.partial(a_price, job, n) for n in job.items]
    prices = await parallel(*calls, lambda: square(job, 3), max_concurrency=4)
    return [*prices, await square(job, 2)]


@durable("async-values")
async def async_values(job: Job) -> dict:
    """Recorded values and a patch, awaited."""
    return {
        "now": (await now()).isoformat(),
        "uuid": str(await uuid4()),
        "random": await random(),
        "captured": await capture("pid-ish", lambda: attempt(job, "capture")),
        "patched": await patched("new-way"),
    }


@durable("async-child")
async def async_child(job: Job) -> int:
    """An async child: one awaited step."""
    return len(await a_first(job))


@durable("async-parent")
async def async_parent(job: Job) -> list[int]:
    """Runs a plain child (``square-task``) and an async one; started, then waited for."""
    first = await run_child("square-task", f"{job.name}-square", 7)
    started = await start_child(async_child, f"{job.name}-async", job)
    return [first, await wait_for_child(started)]


@durable("square-task")
def square_task(n: int) -> int:
    return n * n


@durable("async-sleeps-and-waits")
async def async_sleeps_and_waits(job: Job) -> str:
    await sleep("nap", "10s")
    name, payload = await wait_for_any(["left", "right"], timeout="1h")
    return f"{name}: {payload}"


@durable("async-parked")
async def async_parked(n: int) -> int:
    """Parks on "go", then returns its input plus the payload: for many parked at once."""
    return n + await wait_for_event("go", type=int)


@step("a-undo")
async def a_undo(job: Job, failure: Failure) -> str:
    record(job, "undo")
    return f"undone after {failure.step}"


async def undo(job: Job, failure: Failure) -> str:
    return await a_undo(job, failure)


@step("a-breaks")
async def a_breaks(job: Job) -> str:
    record(job, "start a-breaks")
    raise ValueError("broken")


@durable("async-compensated", on_failure=undo)
async def async_compensated(job: Job) -> str:
    await a_first(job)
    return await a_breaks(job)


@step("a-orm")
async def a_orm(execution_id: str) -> str:
    """Reads the database from an async step body with Django's async ORM."""
    from zart_django.models import Execution

    execution = await Execution.objects.aget(pk=execution_id)
    return execution.task_name


@durable("async-orm")
async def async_orm(execution_id: str) -> str:
    return await a_orm(execution_id)


@durable("async-timeout", timeout="1m")
async def async_timeout(job: Job) -> str:
    """A first step, then a sleep past the execution's timeout: it times out before a second."""
    await a_first(job)
    await sleep("long", "2m")
    return await a_second(job)


@durable("async-approval")
async def async_approval(job: Job) -> str:
    """Asks for an approval, awaited, then runs a step."""
    decision = await wait_for_approval("ok", title="Async deploy")
    return f"{decision.reviewer}: {decision.approved}, {await a_first(job)}"


@step("a-outer")
async def a_outer(job: Job) -> str:
    """An async step whose body awaits another async step's function: a plain call there."""
    return "outer of " + await a_first(job)


@durable("async-nested")
async def async_nested(job: Job) -> str:
    return await a_outer(job)


@durable("async-slow-group")
async def async_slow_group(job: Job) -> list[str]:
    """A group of an async member with a timeout and an async member without one."""
    return await parallel(lambda: a_slow(job), lambda: a_second(job))


@step("plain-breaks")
def plain_breaks(job: Job) -> str:
    record(job, "start plain-breaks")
    raise ValueError("broken")


@durable("plain-compensated-async", on_failure=undo)
def plain_compensated_async(job: Job) -> str:
    """A plain function with an async ``on_failure`` handler: the task runs on the event loop,
    the plain function on an engine thread."""
    return plain_breaks(job)

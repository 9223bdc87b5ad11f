"""Parallel steps: ``parallel(*calls)`` runs one step per call at once and returns the results in
call order.

Each call is a zero-argument callable that calls one step (``functools.partial(fetch, sku)`` or
``lambda: fetch(sku)``). The calls are made first, in the durable function's thread and in call
order, only to learn each member's step and arguments (the step raises ``StepCall`` instead of
running), so the members' keys (``fetch``, ``fetch#2``, ...) and positions follow call order
whatever order they finish in. The bodies of the members not recorded yet then run on threads of
the group's own, at most ``max_concurrency`` of them, while the function's thread checkpoints
each outcome as it arrives: a crash loses only the members in flight, and a replay answers the
others from their checkpoints. The member threads never write; a body's own ORM queries use its
thread's connection, closed when the group ends.

In an ``async def`` durable function ``parallel`` is awaited: async members run as tasks on its
event loop (each cancelled past its step's timeout), plain members on engine threads, at most
``max_concurrency`` at a time; checkpoints are written as they finish, as above.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import queue
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.db import connections

from . import aio, clock, conf, store
from .codec import decode, encode
from .errors import StepFailed
from .models import StepKind, StepResult, StepStatus
from .replay import (
    ExecutionContext,
    StepCall,
    _current,
    _require_context,
    _running_body,
    _step_failed,
    _step_ran,
)

logger = logging.getLogger("zart_django")


@dataclass(frozen=True)
class _Member:
    """One call of the group: its place in call order, its step key and what runs its body."""

    index: int
    key: str
    call: StepCall
    attempt: int


@dataclass
class _Outcome:
    """How one run of a member's body ended: its JSON result, or the exception it raised."""

    member: _Member
    started_at: datetime
    finished_at: datetime
    data: Any = None
    exc: Exception | None = None


def parallel(*calls: Callable[[], Any], max_concurrency: int | None = None) -> list[Any]:
    """Run the step each of ``calls`` calls, at once, and return their results in call order.

    Each member is checkpointed on its own as it finishes; a replay returns the recorded ones
    without running them and runs only the others. At most ``max_concurrency`` bodies run at a
    time (default ``ZART["CONCURRENCY"]``). A failing member follows its step's retry policy
    (the group waits for the others, then the execution waits for the retry); with no attempts
    left, ``StepFailed`` is raised here once every other member has finished. Outside a
    durable function, or inside a step's body, the calls are made one after another, as they are.
    """
    width = _width(max_concurrency)
    outer = _current.get()
    if outer is None or outer.in_step:
        return [call() for call in calls]
    ctx = _require_context("parallel")
    group, pending = _prepare(ctx, calls)
    if ctx.awaits:
        return typing.cast(list[Any], _aparallel(ctx, group, pending, width))
    if pending:
        ctx.check_deadline()
        _settle(ctx, pending, width, group.settled)
    return _conclude(ctx, group)


async def _aparallel(
    ctx: ExecutionContext, group: _Group, pending: list[_Member], width: int
) -> list[Any]:
    """``parallel`` in an async durable function: async bodies run as tasks on its event loop
    (cancelled past their step's timeout), plain ones on engine threads; checkpoints are written
    on an engine thread as members finish."""
    with ctx.one_at_a_time("parallel()"):
        if pending:
            ctx.check_deadline()
            await _asettle(ctx, pending, width, group.settled)
        return await aio.engine_call(functools.partial(_conclude, ctx, group))


def _prepare(
    ctx: ExecutionContext, calls: tuple[Callable[[], Any], ...]
) -> tuple[_Group, list[_Member]]:
    """Learn the members' steps, answer the recorded ones; return the group and the members
    still to run (no database call)."""
    captured = [_capture(ctx, call, index) for index, call in enumerate(calls)]
    ctx.pass_patch_markers()
    base = ctx.position
    group = _Group(ctx, base, _recorded(ctx, captured, base))
    return group, group.replay(captured)


def _conclude(ctx: ExecutionContext, group: _Group) -> list[Any]:
    """Move replay past the group; park until the earliest retry is due, raise the first
    failure, or return the results in call order."""
    base, size = group.base, len(group.recorded)
    ctx.recorded[base:] = [*group.rows, *_after(ctx.recorded[base:], base + size)]
    ctx.position = base + size
    if group.retry_at:
        store.reschedule(ctx.claim, None, min(group.retry_at))
        ctx.suspend()
    if group.failures:
        failure, cause = group.failures[min(group.failures)]
        raise failure from cause
    return group.results


def _width(max_concurrency: int | None) -> int:
    if max_concurrency is None:
        return int(conf.get("CONCURRENCY"))
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"parallel: max_concurrency must be an int, not {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"parallel: max_concurrency must be at least 1, not {max_concurrency}")
    return max_concurrency


def _capture(ctx: ExecutionContext, call: Callable[[], Any], index: int) -> tuple[str, StepCall]:
    """Call ``call`` to learn the step it calls (nothing runs) and give that step its key."""
    if not callable(call):
        raise TypeError(f"parallel: member {index} is not callable: {call!r}")
    ctx.capturing = True
    try:
        call()
    except StepCall as step_call:
        return ctx.next_key(step_call.name), step_call
    finally:
        ctx.capturing = False
    raise TypeError(
        f"parallel: member {index} ({call!r}) returned without calling a step; each member must"
        " call one @step function, e.g. functools.partial(fetch_price, sku)"
    )


def _recorded(
    ctx: ExecutionContext, captured: list[tuple[str, StepCall]], base: int
) -> list[StepResult | None]:
    """The row recorded for each member (at position ``base`` + its index), checked to be its
    step; members that never finished have none (a crash leaves gaps)."""
    ahead = {row.position: row for row in ctx.recorded[base:]}
    rows = []
    for index, (key, _) in enumerate(captured):
        row = ahead.get(base + index)
        if row is not None:
            ctx.check_same(StepKind.STEP, key, base + index, row)
        rows.append(row)
    return rows


def _after(rows: list[StepResult], end: int) -> list[StepResult]:
    return [row for row in rows if row.position >= end]


class _Group:
    """The members' rows, results and failures, filled from the record and as members settle."""

    def __init__(self, ctx: ExecutionContext, base: int, rows: list[StepResult | None]) -> None:
        self.ctx = ctx
        self.base = base
        self.recorded = rows
        self.rows: list[StepResult] = []
        self.results: list[Any] = [None] * len(rows)
        self.failures: dict[int, tuple[StepFailed, Exception | None]] = {}
        self.retry_at: list[datetime] = []

    def replay(self, captured: list[tuple[str, StepCall]]) -> list[_Member]:
        """Answer the finished members from their rows; return the members still to run."""
        pending = []
        for index, ((key, call), row) in enumerate(zip(captured, self.recorded, strict=True)):
            if row is not None and row.status == StepStatus.COMPLETED:
                self.results[index] = decode(
                    row.result, call.return_type, f"result of step {key!r}"
                )
            elif row is not None and row.status == StepStatus.FAILED:
                self.failures[index] = (StepFailed(key, row.error, row.attempts), None)
            else:
                attempt = row.attempts + 1 if row is not None else 1
                pending.append(_Member(index, key, call, attempt))
        self.rows = [row or self._new_row(i) for i, row in enumerate(self.recorded)]
        return pending

    def _new_row(self, index: int) -> StepResult:
        return StepResult(
            execution_id=self.ctx.execution_id,
            run=self.ctx.claim.run,
            position=self.base + index,
            name="",
            kind=StepKind.STEP,
            started_at=clock.now(),
            parallel_group=self.base,
        )

    def settled(self, outcomes: list[_Outcome]) -> None:
        """Checkpoint the members that just finished, then report them."""
        store.checkpoint_many(self.ctx.claim, [self._row(o) for o in outcomes], self.ctx.lease)
        for outcome in outcomes:
            self._report(outcome)

    def _row(self, outcome: _Outcome) -> StepResult:
        member = outcome.member
        row = self.rows[member.index]
        row.name = member.key
        row.attempts = member.attempt
        row.started_at = outcome.started_at
        row.finished_at = outcome.finished_at
        if outcome.exc is None:
            row.status, row.result, row.error = StepStatus.COMPLETED, outcome.data, ""
            return row
        row.error = f"{type(outcome.exc).__name__}: {outcome.exc}"
        retry = member.call.retry
        retrying = retry is not None and member.attempt < retry.max_attempts
        row.status = StepStatus.RETRYING if retrying else StepStatus.FAILED
        return row

    def _report(self, outcome: _Outcome) -> None:
        member = outcome.member
        row = self.rows[member.index]
        ctx, key, name = self.ctx, member.key, member.call.name
        if outcome.exc is None:
            _step_ran(ctx, name, row, "completed")
            self.results[member.index] = decode(
                outcome.data, member.call.return_type, f"result of step {key!r}"
            )
            return
        _step_ran(ctx, name, row, "failed")
        retrying = row.status == StepStatus.RETRYING
        _step_failed(ctx, key, row.error, member.attempt, will_retry=retrying)
        if retrying:
            assert member.call.retry is not None
            due = clock.now() + member.call.retry.delay_after(member.attempt)
            self.retry_at.append(due)
            logger.warning(
                "execution %s: parallel step %s failed (attempt %d of %d), retrying at %s: %s",
                ctx.execution_id,
                key,
                member.attempt,
                member.call.retry.max_attempts,
                due.isoformat(),
                row.error,
            )
            return
        logger.warning(
            "execution %s: parallel step %s failed (attempt %d, no retry left): %s",
            ctx.execution_id,
            key,
            member.attempt,
            row.error,
        )
        failure = StepFailed(key, row.error, member.attempt)
        self.failures[member.index] = (failure, outcome.exc)


def _settle(
    ctx: ExecutionContext,
    pending: list[_Member],
    width: int,
    settled: Callable[[list[_Outcome]], None],
) -> None:
    """Run the bodies of ``pending`` on at most ``width`` threads and hand their outcomes to
    ``settled`` in batches, in this thread, as they arrive. If this thread fails (a lost lease,
    a database error), no further body starts and the running ones are waited for."""
    todo: queue.SimpleQueue[_Member] = queue.SimpleQueue()
    for member in pending:
        todo.put(member)
    done: queue.SimpleQueue[_Outcome | BaseException] = queue.SimpleQueue()
    stop = threading.Event()
    context = contextvars.copy_context()
    in_member = replace(ctx, in_step=True)

    def work() -> None:
        try:
            while not stop.is_set():
                try:
                    member = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done.put(context.copy().run(_run_body, in_member, member))
                except BaseException as exc:  # handed to the function's thread, raised there
                    done.put(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=work, name=f"zart-parallel-{n}", daemon=True)
        for n in range(min(width, len(pending)))
    ]
    for thread in threads:
        thread.start()
    try:
        left = len(pending)
        while left:
            arrived = [done.get()]
            while True:
                try:
                    arrived.append(done.get_nowait())
                except queue.Empty:
                    break
            left -= len(arrived)
            outcomes = [item for item in arrived if isinstance(item, _Outcome)]
            if outcomes:
                settled(outcomes)
            for item in arrived:
                if isinstance(item, BaseException):
                    raise item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def _run_body(ctx: ExecutionContext, member: _Member) -> _Outcome:
    """Run one member's body in this thread, as inside a step: nested steps run as plain calls."""
    _current.set(ctx)
    started = clock.now()
    with _running_body(ctx, member.key, member.attempt, mark=False) as ran:
        ran.data = encode(member.call.body(), f"result of step {member.key!r}")
    return _Outcome(member, started, clock.now(), data=ran.data, exc=ran.error)


async def _arun_body(ctx: ExecutionContext, member: _Member) -> _Outcome:
    """``_run_body`` for an async member, awaited on the event loop; a plain member's body runs
    on an engine thread."""
    if not iscoroutinefunction(member.call.fn):
        return await aio.engine_call(functools.partial(_run_body, ctx, member))
    _current.set(ctx)
    started = clock.now()
    with _running_body(ctx, member.key, member.attempt, mark=False) as ran:
        value = await member.call.awaited(member.key, member.attempt)
        ran.data = encode(value, f"result of step {member.key!r}")
    return _Outcome(member, started, clock.now(), data=ran.data, exc=ran.error)


async def _asettle(
    ctx: ExecutionContext,
    pending: list[_Member],
    width: int,
    settled: Callable[[list[_Outcome]], None],
) -> None:
    """``_settle`` on the event loop: at most ``width`` bodies at a time, ``settled`` called on
    an engine thread with the outcomes that arrived together. If that fails, the bodies still
    running are cancelled."""
    gate = asyncio.Semaphore(width)
    in_member = replace(ctx, in_step=True)

    async def run(member: _Member) -> _Outcome:
        async with gate:
            return await _arun_body(in_member, member)

    running = {asyncio.ensure_future(run(member)) for member in pending}
    try:
        while running:
            done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            outcomes = [task.result() for task in done]
            await aio.engine_call(functools.partial(settled, outcomes))
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

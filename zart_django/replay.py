"""The replay engine: runs one execution from the top, answering recorded steps from the database.

It replays the execution's current run: the steps of that run only, loaded in one query (a retry,
rerun or restart begins a new run that starts with copies of the steps it keeps; the rows of
earlier runs stay as their history, see ``zart_django.runs``).

A step already recorded returns its stored result (or raises its stored failure) without running
its body. Steps are identified by position, name and occurrence (``name``, ``name#2``, ...); a
recorded position with another name means the code changed: ``NonDeterminismError`` blocks the
execution (held, not failed) until a worker with fixed code retries it. ``patched`` lets new code
and the history of executions in flight agree. Waits and sleeps park the execution: the worker
lets go of it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import traceback
import typing
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction

from . import aio, clock, conf, metrics, store, tracing
from .codec import decode, encode, type_ref
from .compensation import Failure, begun, failure_of
from .durations import Duration, parse_duration
from .errors import (
    DatabaseUnavailable,
    EventReserved,
    EventTimeout,
    LeaseLost,
    NonDeterminismError,
    StepFailed,
    StepTimeout,
    Suspended,
)
from .models import (
    ANY_SEPARATOR,
    CompensationStatus,
    Status,
    StepKind,
    StepResult,
    StepStatus,
    new_step_row,
    step_rows_heard,
)
from .names import MAX_LENGTH as MAX_NAME_LENGTH
from .names import check_name
from .registry import DurableTask, TaskRegistry, default_registry
from .reserved import reservation
from .retry import RetryPolicy
from .signals import execution_finished, send, send_blocked, step_failed

logger = logging.getLogger("zart_django")

T = TypeVar("T")
P = ParamSpec("P")


class _ExecutionTimedOut(BaseException):
    """Internal: the execution's own timeout passed."""


@dataclass
class ExecutionContext:
    """What a running durable function knows about itself, kept in a context variable."""

    claim: store.Claim
    task: DurableTask
    recorded: list[StepResult]
    lease: float
    position: int = 0
    occurrences: Counter[str] = field(default_factory=Counter)
    patches: dict[str, bool] = field(default_factory=dict)
    fatal: NonDeterminismError | None = None
    suspended: bool = False
    in_step: bool = False
    capturing: bool = False
    """Set while ``parallel`` calls a member to learn its step: the step raises ``StepCall``."""
    registry: TaskRegistry = default_registry
    """The registry the worker runs the execution from (child tasks are looked up there)."""
    is_async: bool = False
    """Whether the code it runs (the function, or its ``on_failure`` handler) is ``async def``."""
    busy: str = ""
    """What an async function awaits from the engine now ("" when nothing): one at a time."""
    rows_heard: bool = field(default_factory=step_rows_heard)
    """Whether a receiver listens to the step rows' ``pre_init`` or ``post_init``, asked once
    as the run begins: one connected during a run hears of the rows of the next."""

    @property
    def execution_id(self) -> str:
        return self.claim.execution_id

    @property
    def awaits(self) -> bool:
        """Whether an engine call made here must be awaited: the running code is ``async def``
        and this is its event loop (not a step's body, nor an engine thread)."""
        return self.is_async and not (self.in_step or self.capturing or aio.on_engine_thread())

    @contextmanager
    def one_at_a_time(self, what: str) -> Iterator[None]:
        """Mark the async function as awaiting ``what``; refuse a second engine call meanwhile
        (steps of one execution run one after another, or together through ``parallel``)."""
        if self.busy:
            raise RuntimeError(
                f"execution {self.execution_id!r} awaits {what} while it awaits {self.busy}: an"
                " async durable function awaits one step or wait at a time (no asyncio.gather or"
                " create_task over them); run steps together with zart_django.parallel"
            )
        self.busy = what
        try:
            yield
        finally:
            self.busy = ""

    def next_key(self, name: str) -> str:
        self.occurrences[name] += 1
        count = self.occurrences[name]
        return name if count == 1 else f"{name}#{count}"

    def recorded_at_position(self, kind: str, key: str) -> StepResult | None:
        """The row recorded where replay now stands, checked to be the same step. Patch markers
        the code no longer asks about are passed over (the patch was removed with its old
        branch, so the code is what the marker chose)."""
        self.pass_patch_markers()
        if self.position >= len(self.recorded):
            return None
        row = self.recorded[self.position]
        self.check_same(kind, key, self.position, row)
        return row

    def pass_patch_markers(self) -> None:
        """Move past the patch markers recorded where replay stands (see ``recorded_at_position``)."""
        if self.fatal is not None:
            raise self.fatal  # the function caught it and went on: nothing more may run
        while self.position < len(self.recorded):
            if self.recorded[self.position].kind != StepKind.PATCH:
                break
            self.position += 1

    def check_same(self, kind: str, key: str, position: int, row: StepResult) -> None:
        """Raise (and keep) ``NonDeterminismError`` unless ``row`` is ``kind`` ``key``."""
        if row.name != key or row.kind != kind:
            self.fatal = NonDeterminismError(
                f"execution {self.execution_id!r} replayed {kind} {key!r} at position"
                f" {position}, where {row.kind} {row.name!r} is recorded: the durable"
                " function's code changed while the execution was in flight. The execution is"
                ' blocked, not failed: put the change behind zart_django.patched("<patch id>")'
                " (the new code where it returns True, the old where it returns False), or revert"
                " it, and deploy; a worker started after the deploy retries it once"
            )
            raise self.fatal

    def new_row(self, kind: str, key: str, existing: StepResult | None) -> StepResult:
        if existing is not None:
            return existing
        return new_step_row(
            self.execution_id,
            self.claim.run,
            self.position,
            key,
            kind,
            clock.now(),
            self.rows_heard,
        )

    @property
    def deadline(self) -> datetime | None:
        return self.claim.deadline

    def check_deadline(self) -> None:
        if self.deadline is not None and clock.now() >= self.deadline:
            raise _ExecutionTimedOut()

    def advance(self, row: StepResult) -> None:
        if self.position >= len(self.recorded):
            self.recorded.append(row)
        self.position += 1

    def suspend(self) -> typing.NoReturn:
        self.suspended = True
        raise Suspended(self.execution_id)


_current: ContextVar[ExecutionContext | None] = ContextVar("zart_execution", default=None)


class StepCall(BaseException):
    """A call of a step: the step's name, retry policy, timeout, return type and body, and the
    arguments. The engine runs it; while ``parallel`` learns its members (``capturing``) the step
    raises it instead, a ``BaseException`` so the call's own ``except Exception`` lets it pass."""

    def __init__(
        self,
        name: str,
        retry: RetryPolicy | None,
        return_type: Any,
        fn: Callable[..., Any],
        positional: tuple[Any, ...],
        keywords: dict[str, Any],
        timeout: timedelta | None = None,
    ) -> None:
        super().__init__(name)
        self.name = name
        self.retry = retry
        self.return_type = return_type
        self.fn = fn
        self.positional = positional
        self.keywords = keywords
        self.timeout = timeout

    def body(self) -> Any:
        """Call the step's function (for an async step, the coroutine to await)."""
        return self.fn(*self.positional, **self.keywords)

    async def awaited(self, key: str, attempt: int) -> Any:
        """Await an async step's body, cancelled past its timeout with ``StepTimeout``."""
        if self.timeout is None:
            return await self.body()
        try:
            async with asyncio.timeout(self.timeout.total_seconds()) as limit:
                return await self.body()
        except TimeoutError:
            if limit.expired():
                raise StepTimeout(key, attempt, self.timeout) from None
            raise


def current_execution_id() -> str | None:
    """The id of the execution whose durable function is running in this thread, if any."""
    ctx = _current.get()
    return ctx.execution_id if ctx is not None else None


def _require_context(what: str) -> ExecutionContext:
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError(
            f"{what} can only be called inside a durable function run by a worker"
            " (or by zart_django.testing.run_until_idle in tests)"
        )
    if ctx.in_step:
        raise RuntimeError(f"{what} cannot be called inside a step; call it between steps")
    if ctx.capturing:
        raise RuntimeError(f"{what} cannot be a member of parallel(); each member calls one step")
    return ctx


def awaitable_in_async(fn: Callable[P, T]) -> Callable[P, T]:
    """Make an engine function (a wait, a sleep, a recorded value...) awaitable in an ``async
    def`` durable function: called there it returns a coroutine that runs it on an engine thread
    (see ``zart_django.aio``); anywhere else it runs as it is. For apps built on the engine, such
    as ``wait_for_approval``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        ctx = _current.get()
        if ctx is not None and ctx.awaits:
            return typing.cast(
                T, _awaited(ctx, fn.__name__, functools.partial(fn, *args, **kwargs))
            )
        return fn(*args, **kwargs)

    return wrapper


async def _awaited(ctx: ExecutionContext, what: str, call: Callable[[], T]) -> T:
    with ctx.one_at_a_time(what):
        return await aio.engine_call(call)


def step(
    name: str, *, retry: RetryPolicy | None = None, timeout: Duration | None = None
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Make a function a checkpointed step named ``name``.

    Inside a durable function the body runs once; its JSON result is stored and returned on every
    replay. Outside one, or inside another step's body, the function is called as it is. A
    failure is retried by ``retry``; with no attempts left it is recorded and raised as
    ``StepFailed``.

    An ``async def`` step is awaited, in an ``async def`` durable function only (a plain one
    gets ``TypeError``); an async durable function awaits its plain steps too, whose bodies run
    on an engine thread. ``timeout`` (async steps only: Python cannot stop a thread, so a plain
    step with one is refused here with ``TypeError``) cancels an attempt that runs longer; it
    fails with ``StepTimeout`` and counts as a failed attempt for ``retry``.
    """
    limit = parse_duration(timeout) if timeout is not None else None
    if limit is not None and limit <= timedelta(0):
        raise ValueError(f"step {name!r}: timeout must be positive, not {timeout!r}")

    def decorate(fn: Callable[..., T]) -> Callable[..., T]:
        is_async = iscoroutinefunction(fn)
        if limit is not None and not is_async:
            raise TypeError(
                f"step {name!r}: timeout= applies to async def steps only; {fn.__qualname__} is a"
                " plain function, which runs on a thread that Python cannot stop (bound its work"
                " yourself, e.g. a socket timeout, or make it async def)"
            )

        @functools.cache
        def return_type() -> Any:
            return typing.get_type_hints(fn).get("return", Any)

        def call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> StepCall:
            return StepCall(name, retry, return_type(), fn, args, kwargs, limit)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = _current.get()
            if ctx is None or ctx.in_step:
                return fn(*args, **kwargs)  # outside a durable function, or inside a step
            if ctx.capturing:
                raise call(args, kwargs)
            if is_async:
                _check_awaitable(ctx, name)
                return _arun_step(ctx, call(args, kwargs))
            if ctx.awaits:
                return _awaited(
                    ctx, f"step {name!r}", functools.partial(_run_step, ctx, call(args, kwargs))
                )
            return _run_step(ctx, call(args, kwargs))

        return markcoroutinefunction(wrapper) if is_async else wrapper

    return decorate


zart_step = step


@dataclass
class _Attempt:
    """A step call about to run its body: its key, its row and the attempt's number (1, 2...)."""

    key: str
    row: StepResult
    number: int


def _step_begins(ctx: ExecutionContext, call: StepCall) -> _Attempt | tuple[Any]:
    """The attempt that is to run now, or ``(result,)`` for a step recorded as completed (a step
    recorded as failed raises its ``StepFailed`` again). Makes no database call."""
    key = ctx.next_key(call.name)
    row = ctx.recorded_at_position(StepKind.STEP, key)
    if row is not None and row.status == StepStatus.COMPLETED:
        ctx.advance(row)
        return (decode(row.result, call.return_type, f"result of step {key!r}"),)
    if row is not None and row.status == StepStatus.FAILED:
        ctx.advance(row)
        raise StepFailed(key, row.error, row.attempts)
    ctx.check_deadline()
    if row is None:  # begun now (``new_row`` reads the clock once for it)
        row, number = ctx.new_row(StepKind.STEP, key, None), 1
    else:  # an attempt after a failed one, recorded as retrying
        row.started_at, number = clock.now(), row.attempts + 1
    row.attempts = number
    return _Attempt(key, row, number)


class _running_body:
    """Around a step body's run (in ``ctx``, marked as inside a step unless ``mark`` is False:
    a ``parallel`` member's context is marked already): its trace span, and its exception kept
    for the caller to record. What ``with`` gives is the object itself: the body's JSON result
    goes in ``data``; ``error`` holds the ``Exception`` it raised (one not an ``Exception``
    passes). A class, not a generator: a step's cost."""

    __slots__ = ("ctx", "mark", "span", "data", "error")

    def __init__(self, ctx: ExecutionContext, key: str, attempt: int, mark: bool = True) -> None:
        self.ctx = ctx
        self.mark = mark
        self.span = tracing.step_span(ctx.execution_id, key, attempt)
        self.data: Any = None
        self.error: Exception | None = None

    def __enter__(self) -> _running_body:
        self.span.__enter__()
        self.ctx.in_step = self.ctx.in_step or self.mark
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        try:
            self.span.__exit__(kind, exc, tb)
        finally:
            if self.mark:
                self.ctx.in_step = False
        if isinstance(exc, Exception):
            self.error = exc
            return True
        return False


def _run_step(ctx: ExecutionContext, call: StepCall) -> Any:
    attempt = _step_begins(ctx, call)
    if not isinstance(attempt, _Attempt):
        return attempt[0]
    store.release_pooled_connection()  # the body may wait on I/O for long: don't hold one
    with _running_body(ctx, attempt.key, attempt.number) as ran:
        ran.data = encode(call.body(), f"result of step {attempt.key!r}")
    if ran.error is not None:
        _step_raised(ctx, call, attempt, ran.error)
    return _step_returned(ctx, call, attempt, ran.data)


def _check_awaitable(ctx: ExecutionContext, name: str) -> None:
    """Refuse an async step called where it cannot be awaited: from a plain def function."""
    if not ctx.is_async or aio.on_engine_thread():
        raise TypeError(
            f"step {name!r} is async def: only an async def durable function can await it,"
            f" and {ctx.task.name!r} runs a plain def one here; make the function async def, or"
            " the step a plain def"
        )


async def _arun_step(ctx: ExecutionContext, call: StepCall) -> Any:
    """``_run_step`` for an async step: the body is awaited on the event loop (cancelled past
    the step's timeout), the checkpoint is written on an engine thread."""
    with ctx.one_at_a_time(f"step {call.name!r}"):
        attempt = _step_begins(ctx, call)
        if not isinstance(attempt, _Attempt):
            return attempt[0]
        with _running_body(ctx, attempt.key, attempt.number) as ran:
            value = await call.awaited(attempt.key, attempt.number)
            ran.data = encode(value, f"result of step {attempt.key!r}")
        if ran.error is not None:
            await aio.engine_call(functools.partial(_step_raised, ctx, call, attempt, ran.error))
        return await aio.engine_call(
            functools.partial(_step_returned, ctx, call, attempt, ran.data)
        )


def _step_raised(
    ctx: ExecutionContext, call: StepCall, attempt: _Attempt, exc: Exception
) -> typing.NoReturn:
    """Record a failed attempt: park the execution until the retry is due, or, with no attempt
    left, checkpoint the failure and raise ``StepFailed``."""
    row, key, number, retry = attempt.row, attempt.key, attempt.number, call.retry
    row.error = f"{type(exc).__name__}: {exc}"
    row.finished_at = clock.now()
    _step_ran(ctx, call.name, row, "failed")
    if retry is not None and number < retry.max_attempts:
        row.status = StepStatus.RETRYING
        due = clock.now() + retry.delay_after(number)
        store.reschedule(ctx.claim, row, due)
        _step_failed(ctx, key, row.error, number, will_retry=True)
        logger.warning(
            "execution %s: step %s failed (attempt %d of %d), retrying at %s: %s",
            ctx.execution_id,
            key,
            number,
            retry.max_attempts,
            due.isoformat(),
            row.error,
        )
        ctx.suspend()
    row.status = StepStatus.FAILED
    store.checkpoint(ctx.claim, row, ctx.lease)
    ctx.advance(row)
    _step_failed(ctx, key, row.error, number, will_retry=False)
    logger.warning(
        "execution %s: step %s failed (attempt %d, no retry left): %s",
        ctx.execution_id,
        key,
        number,
        row.error,
    )
    raise StepFailed(key, row.error, number) from exc


def _step_returned(ctx: ExecutionContext, call: StepCall, attempt: _Attempt, data: Any) -> Any:
    """Checkpoint a completed attempt and return its result, rebuilt as the step's type."""
    row = attempt.row
    row.status = StepStatus.COMPLETED
    row.result = data
    row.error = ""
    row.finished_at = clock.now()
    _step_ran(ctx, call.name, row, "completed")
    store.checkpoint(ctx.claim, row, ctx.lease)
    ctx.advance(row)
    return decode(data, call.return_type, f"result of step {attempt.key!r}")


def _step_ran(ctx: ExecutionContext, name: str, row: StepResult, outcome: str) -> None:
    seconds = (row.finished_at - row.started_at).total_seconds()
    metrics.step_ran(ctx.claim.task_name, name, outcome, seconds)


def _step_failed(
    ctx: ExecutionContext, key: str, error: str, attempt: int, will_retry: bool
) -> None:
    send(
        step_failed,
        execution_id=ctx.execution_id,
        task_name=ctx.task.name,
        step=key,
        error=error,
        attempt=attempt,
        will_retry=will_retry,
    )


def recorded_value(name: str, make: Callable[[], Any], type: Any = Any) -> Any:
    """``make()``'s value, recorded as value ``name`` (``name``, ``name#2``, ...) the first time
    the running durable function reaches this point and read back on every replay, rebuilt as
    ``type``. Outside a durable function, or inside a step's body, ``make()`` as it is."""
    ctx = _current.get()
    if ctx is None or ctx.in_step:
        return make()
    key = ctx.next_key(name)
    where = f"value {key!r}"
    row = ctx.recorded_at_position(StepKind.VALUE, key)
    if row is not None:
        ctx.advance(row)
        return decode(row.result, type, where)
    data = encode(make(), where)
    _record(ctx, ctx.new_row(StepKind.VALUE, key, None), StepStatus.COMPLETED, data)
    return decode(data, type, where)


def wait_recorded(name: str) -> bool:
    """Whether the wait for event ``name`` that the running durable function is about to make is
    already recorded in this run (reached before, or kept from an earlier run by a retry or rerun):
    for apps that do something once when a wait is first reached, such as asking for an approval."""
    ctx = _require_context("wait_recorded")
    if ctx.position >= len(ctx.recorded):
        return False
    row = ctx.recorded[ctx.position]
    return row.kind == StepKind.EVENT and row.name == name


@awaitable_in_async
def wait_for_event(
    name: str,
    timeout: Duration | None = None,
    type: Any = Any,
    *,
    wake_at: datetime | None = None,
) -> Any:
    """Return the payload of event ``name`` (rebuilt as ``type``, by default the type the task
    declares for it in ``@durable(events=...)``), parking until it is offered.

    While parked the execution holds no thread. The deadline (now + ``timeout``) is stored when
    the wait begins, so a restart does not extend it; past it, ``EventTimeout`` is raised here.
    An event offered before the wait is kept and returned at once.

    ``wake_at`` (an absolute time, instead of ``timeout``) ends the wait without expiring its
    event: ``EventTimeout`` is raised here (and on every replay), the event is still accepted and
    a later wait on ``name`` receives it; for timers inside a longer wait, such as reminders.
    Such a wait has no deadline, so while it is the latest wait ``offer_event`` accepts the event:
    a caller with an overall deadline refuses late events itself (as ``decide`` does).
    """
    ctx = _require_context("wait_for_event")
    check_name(name, "event name")
    if wake_at is not None and timeout is not None:
        raise ValueError("wait_for_event takes a timeout or a wake_at time, not both")
    if type is Any:
        type = ctx.task.events.get(name, Any)
    row = ctx.recorded_at_position(StepKind.EVENT, name)
    if row is not None and row.status == StepStatus.COMPLETED:
        if ctx.position == len(ctx.recorded) - 1:  # delivered while parked: this run resumes it
            metrics.resumed_after_event(ctx.claim.task_name, _since(row.finished_at))
        ctx.advance(row)
        return decode(row.result, type, f"event {name!r}")
    if row is not None and row.status == StepStatus.TIMED_OUT:
        ctx.advance(row)
        raise EventTimeout(name)
    found, payload = store.event_payload(ctx.execution_id, ctx.claim.run, name)
    deadline = row.deadline if row is not None else _deadline(timeout)
    row = ctx.new_row(StepKind.EVENT, name, row)
    row.deadline = deadline
    if found:
        value = decode(payload, type, f"event {name!r}")
        _record(ctx, row, StepStatus.COMPLETED, payload)
        return value
    timer = _earliest(deadline, wake_at)
    if timer is not None and clock.now() >= timer:
        row.status, row.result, row.finished_at = StepStatus.TIMED_OUT, None, clock.now()
        found, payload = store.expire_wait(ctx.claim, row)
        if not found:
            ctx.advance(row)
            raise EventTimeout(name)
        value = decode(payload, type, f"event {name!r}")
        _record(ctx, row, StepStatus.COMPLETED, payload)
        return value
    row.status = StepStatus.WAITING
    row.type_ref = type_ref(type)
    store.park(ctx.claim, row, name, _earliest(timer, ctx.deadline))
    logger.info("execution %s: waiting for event %s", ctx.execution_id, name)
    ctx.suspend()


@awaitable_in_async
def wait_for_any(
    names: Sequence[str], timeout: Duration | None = None, type: Any = Any
) -> tuple[str, Any]:
    """Return ``(name, payload)`` of the first of the events ``names`` to be offered, parking
    until one is. ``type`` rebuilds the payload: one type for all, or a mapping from name to type
    (by default the types the task declares in ``@durable(events=...)``).

    Events offered before the wait count, and the one the database stored first wins; the others
    stay in the inbox for a later wait (this one skips events an earlier wait of the run took).
    The choice is recorded, so a replay returns it. Past the deadline (now + ``timeout``, stored
    when the wait begins), ``EventTimeout`` is raised here. A reserved name (an approval's) is
    refused with ``EventReserved``: only its own app's path may complete a wait on it.
    """
    ctx = _require_context("wait_for_any")
    names = _any_names(names)
    key = ANY_SEPARATOR.join(names)
    row = ctx.recorded_at_position(StepKind.ANY, key)
    if row is not None and row.status == StepStatus.COMPLETED:
        ctx.advance(row)
        return _chosen(ctx, row.result, type)
    if row is not None and row.status == StepStatus.TIMED_OUT:
        ctx.advance(row)
        raise EventTimeout(key)
    taken = _taken(ctx)
    candidates = [name for name in names if name not in taken]
    if not candidates:
        raise ValueError(f"wait_for_any({key!r}): earlier waits of this run took every one")
    found = store.first_event(ctx.execution_id, ctx.claim.run, candidates)
    deadline = row.deadline if row is not None else _deadline(timeout)
    row = ctx.new_row(StepKind.ANY, key, row)
    row.deadline = deadline
    if found is None and deadline is not None and clock.now() >= deadline:
        row.status, row.result, row.finished_at = StepStatus.TIMED_OUT, None, clock.now()
        found = store.expire_any_wait(ctx.claim, row, candidates)
        if found is None:
            ctx.advance(row)
            raise EventTimeout(key)
    if found is not None:
        choice = {"name": found[0], "payload": found[1]}
        value = _chosen(ctx, choice, type)
        _record(ctx, row, StepStatus.COMPLETED, choice)
        return value
    row.status = StepStatus.WAITING
    waiting_on = ANY_SEPARATOR.join(candidates)
    store.park(ctx.claim, row, waiting_on, _earliest(deadline, ctx.deadline), events=candidates)
    logger.info("execution %s: waiting for the first of %s", ctx.execution_id, waiting_on)
    ctx.suspend()


def _any_names(names: Sequence[str]) -> list[str]:
    """``names`` checked: a list of distinct event names, none reserved, that fit ``waiting_on``."""
    if isinstance(names, str) or not names:
        raise ValueError("wait_for_any takes a list of one or more event names")
    checked = [check_name(name, "event name") for name in names]
    if len(set(checked)) != len(checked):
        raise ValueError(f"wait_for_any: an event name is repeated in {checked!r}")
    for name in checked:
        how = reservation(name)
        if how is not None:
            raise EventReserved(name, how)
    if len(ANY_SEPARATOR.join(checked)) > MAX_NAME_LENGTH:
        raise ValueError(
            f"wait_for_any: the names joined by {ANY_SEPARATOR!r} must fit {MAX_NAME_LENGTH}"
            " characters"
        )
    return checked


def _taken(ctx: ExecutionContext) -> set[str]:
    """The events earlier waits of this run took: ``wait_for_any`` leaves them to no one else."""
    taken = set()
    for row in ctx.recorded[: ctx.position]:
        if row.kind == StepKind.EVENT and row.status == StepStatus.COMPLETED:
            taken.add(row.name)
        elif row.kind == StepKind.ANY and row.status == StepStatus.COMPLETED:
            taken.add(row.result["name"])
    return taken


def _chosen(ctx: ExecutionContext, choice: dict[str, Any], type: Any) -> tuple[str, Any]:
    name = choice["name"]
    declared = ctx.task.events.get(name, Any)
    if isinstance(type, Mapping):
        expected = type.get(name, declared)
    else:
        expected = type if type is not Any else declared
    return name, decode(choice["payload"], expected, f"event {name!r}")


@awaitable_in_async
def sleep(name: str, duration: Duration) -> None:
    """Pause the durable function for ``duration``, durably: the execution parks until then."""
    ctx = _require_context("sleep")
    key = ctx.next_key(name)
    row = ctx.recorded_at_position(StepKind.SLEEP, key)
    if row is not None and row.status == StepStatus.COMPLETED:
        ctx.advance(row)
        return
    deadline = row.deadline if row is not None else _deadline(duration)
    row = ctx.new_row(StepKind.SLEEP, key, row)
    row.deadline = deadline
    if deadline is None or clock.now() >= deadline:
        _record(ctx, row, StepStatus.COMPLETED, None)
        return
    row.status = StepStatus.WAITING
    store.park(ctx.claim, row, f"sleep:{key}", _earliest(deadline, ctx.deadline))
    logger.info("execution %s: sleeping until %s", ctx.execution_id, deadline.isoformat())
    ctx.suspend()


@awaitable_in_async
def patched(patch_id: str) -> bool:
    """Whether this execution runs the code of patch ``patch_id``: a change to a durable
    function that executions in flight must not see.

    True for an execution that reaches this point on code that has the patch (a marker is
    recorded, a checkpoint like a step's, so its replays answer True too); False when replaying
    history recorded here before the patch existed (nothing is recorded: the old code's steps
    follow). The first answer holds for the rest of the run. Once no execution from before the
    patch is in flight, remove the old branch and the call: recorded markers are passed over.
    """
    ctx = _require_context("patched")
    check_name(patch_id, "patch id")
    if ctx.fatal is not None:
        raise ctx.fatal
    if patch_id not in ctx.patches:
        ctx.patches[patch_id] = _patch_answer(ctx, patch_id)
    return ctx.patches[patch_id]


def _patch_answer(ctx: ExecutionContext, patch_id: str) -> bool:
    ahead = ctx.recorded[ctx.position :]
    markers = list(itertools.takewhile(lambda row: row.kind == StepKind.PATCH, ahead))
    for offset, row in enumerate(markers):
        if row.name == patch_id:
            ctx.position += offset  # markers before it are of patches since removed
            ctx.advance(row)
            return True
    if len(markers) < len(ahead):
        return False  # a step of the code before the patch is recorded here
    ctx.position += len(markers)
    _record(ctx, ctx.new_row(StepKind.PATCH, patch_id, None), StepStatus.COMPLETED, None)
    return True


def _record(ctx: ExecutionContext, row: StepResult, status: str, result: Any) -> None:
    row.status = status
    row.result = result
    row.finished_at = clock.now()
    store.checkpoint(ctx.claim, row, ctx.lease)
    ctx.advance(row)


def _since(moment: datetime | None) -> float:
    return (clock.now() - moment).total_seconds() if moment is not None else 0.0


def _deadline(timeout: Duration | None) -> datetime | None:
    return clock.now() + parse_duration(timeout) if timeout is not None else None


def _earliest(*times: datetime | None) -> datetime | None:
    present = [t for t in times if t is not None]
    return min(present) if present else None


def run_execution(claim: store.Claim, registry: TaskRegistry) -> str:
    """Run a claimed execution until it finishes or parks; return the status it was left in.

    A database error is never the execution's failure, nor a task missing from ``registry``: the
    execution is handed back, due after a poll interval, to be resumed from its checkpoints
    ("handed back") by a worker that can. An async task runs on an event loop of its own while
    its engine calls run in this thread (a worker runs it on its loop: ``arun_execution``).
    """
    if claim.task_name not in registry:
        return _hand_back(claim, f"this worker has no task {claim.task_name!r}")
    if registry.get(claim.task_name).is_async:
        return aio.run_here(arun_execution, claim, registry)
    with tracing.execution_span(claim.execution_id, claim.task_name) as outcome:
        try:
            return outcome(_run(claim, registry))
        except (LeaseLost, DatabaseUnavailable, *store.CONNECTION_ERRORS) as exc:
            return outcome(_interrupted(claim, exc))


async def arun_execution(claim: store.Claim, registry: TaskRegistry) -> str:
    """``run_execution`` on an event loop, for an execution of an async task: the function is
    awaited there and every engine call is made on an engine thread (``zart_django.aio``)."""
    if claim.task_name not in registry:
        why = f"this worker has no task {claim.task_name!r}"
        return await aio.engine_call(functools.partial(_hand_back, claim, why))
    with tracing.execution_span(claim.execution_id, claim.task_name) as outcome:
        try:
            return outcome(await _arun(claim, registry))
        except (LeaseLost, DatabaseUnavailable, *store.CONNECTION_ERRORS) as exc:
            return outcome(await aio.engine_call(functools.partial(_interrupted, claim, exc)))


def _interrupted(claim: store.Claim, exc: BaseException) -> str:
    """Let go of an execution whose run stopped on a lost lease or a database error."""
    if isinstance(exc, LeaseLost):
        logger.warning("execution %s: lease lost, leaving it to its new owner", claim.execution_id)
        metrics.lease_lost()
        return "lease lost"
    store.close_connection()
    return _hand_back(claim, f"database error: {store.first_line(exc)}")


def _hand_back(claim: store.Claim, why: str) -> str:
    logger.warning("execution %s: %s; handing it back to be resumed", claim.execution_id, why)
    try:
        store.release(
            [claim.token],
            claim.execution_id,
            patience=float(conf.get("LEASE")),
            delay=float(conf.get("POLL_INTERVAL")),  # an error that persists does not spin
        )
    except store.CONNECTION_ERRORS as again:
        logger.error(
            "execution %s: could not hand it back, it resumes when its lease expires: %s",
            claim.execution_id,
            store.first_line(again),
        )
        store.close_connection()
    return "handed back"


@dataclass(frozen=True)
class _Drive:
    """What a run does next: run ``call`` (the durable function, or its ``on_failure`` handler)
    in ``ctx``, store its return value as ``what``, then hand how it left to ``then``, which
    ends the execution or returns the next ``_Drive`` (a failure's compensation)."""

    ctx: ExecutionContext
    call: Callable[[], Any]
    what: str
    then: Callable[[str, Any], str | _Drive]


def _run(claim: store.Claim, registry: TaskRegistry) -> str:
    plan = _begin(claim, registry)
    while isinstance(plan, _Drive):
        plan = _after(plan, *_drive(plan))
    return plan


async def _arun(claim: store.Claim, registry: TaskRegistry) -> str:
    """``_run`` on an event loop: the bookkeeping between drives runs on engine threads, and so
    does the drive of a plain def ``on_failure`` handler of an async task."""
    plan = await aio.engine_call(functools.partial(_begin, claim, registry))
    while isinstance(plan, _Drive):
        if plan.ctx.is_async:
            outcome, value = await _adrive(plan)
        else:
            outcome, value = await aio.engine_call(functools.partial(_drive, plan))
        plan = await aio.engine_call(functools.partial(_after, plan, outcome, value))
    return plan


def _begin(claim: store.Claim, registry: TaskRegistry) -> str | _Drive:
    """The first thing a run does: give up on an execution lost too often, resume its
    compensation, or drive its function."""
    task = registry.get(claim.task_name)
    running = store.running_compensation(claim.execution_id) if task.on_failure else None
    if claim.recoveries > conf.get("MAX_RECOVERIES"):
        error = f"its worker was lost {claim.recoveries} times while running it; giving up"
        if running is not None:
            return _end_compensation(claim, running, error=error)
        return _end(claim, Status.FAILED, error=error)
    steps = store.load_steps(claim.execution_id, claim.run)
    if running is not None:
        return _compensation(claim, task, steps, running, registry)
    ctx = ExecutionContext(
        claim,
        task,
        steps,
        float(conf.get("LEASE")),
        registry=registry,
        is_async=iscoroutinefunction(task.fn),
    )

    def function() -> Any:
        return task.invoke(decode(claim.input, task.input_type, "input"))

    return _Drive(ctx, function, "value", functools.partial(_function_left, claim, task, ctx))


def _function_left(
    claim: store.Claim, task: DurableTask, ctx: ExecutionContext, outcome: str, value: Any
) -> str | _Drive:
    if outcome == Status.TIMED_OUT:
        error = f"timed out after {task.timeout}"
        failure = Failure(step="", error=error, timed_out=True)
        return _fail(claim, task, ctx, Status.TIMED_OUT, error, failure)
    if outcome == Status.FAILED:
        return _fail(claim, task, ctx, Status.FAILED, _describe(value), failure_of(value))
    return _end(claim, Status.COMPLETED, output=value)


def _after(plan: _Drive, outcome: str, value: Any) -> str | _Drive:
    """What follows a drive: a parked run is done, a mismatch blocks the execution, and the
    drive's ``then`` handles the rest."""
    if outcome == Status.WAITING:
        return outcome
    if outcome == Status.BLOCKED:
        assert plan.ctx.fatal is not None
        return _block(plan.ctx.claim, plan.ctx.fatal)
    return plan.then(outcome, value)


def _drive(plan: _Drive) -> tuple[str, Any]:
    """Run ``plan.call`` in its context; return how it left: (``completed``, its stored value),
    (``failed``, the exception), (``timed_out``, None), (``waiting``, None: it parked or waits
    for a retry) or (``blocked``, None: ``ctx.fatal``, after which it is to be blocked)."""
    reset = _current.set(plan.ctx)
    try:
        plan.ctx.check_deadline()
        value = encode(plan.call(), plan.what)
    except BaseException as exc:
        return _stopped(plan.ctx, exc)
    finally:
        _current.reset(reset)
    return _returned(plan.ctx, value)


async def _adrive(plan: _Drive) -> tuple[str, Any]:
    """``_drive`` for an ``async def`` call, awaited on the event loop."""
    reset = _current.set(plan.ctx)
    try:
        plan.ctx.check_deadline()
        value = encode(await plan.call(), plan.what)
    except BaseException as exc:
        return _stopped(plan.ctx, exc)
    finally:
        _current.reset(reset)
    return _returned(plan.ctx, value)


def _stopped(ctx: ExecutionContext, exc: BaseException) -> tuple[str, Any]:
    """How a drive left that raised ``exc``; a database error, a lost lease and the process's
    own exits (``KeyboardInterrupt``, a cancelled task) are raised again."""
    if isinstance(exc, Suspended):
        return Status.WAITING, None
    if isinstance(exc, _ExecutionTimedOut):
        return Status.TIMED_OUT, None
    if isinstance(exc, store.CONNECTION_ERRORS) or not isinstance(exc, Exception):
        raise exc  # a query between steps failed on the database: the run is handed back
    if ctx.suspended or ctx.fatal is not None:
        return _returned(ctx, None)
    return Status.FAILED, exc


def _returned(ctx: ExecutionContext, value: Any) -> tuple[str, Any]:
    if ctx.suspended:
        return Status.WAITING, None
    if ctx.fatal is not None:
        return Status.BLOCKED, None
    return Status.COMPLETED, value


def _fail(
    claim: store.Claim,
    task: DurableTask,
    ctx: ExecutionContext,
    status: Status,
    error: str,
    failure: Failure,
) -> str | _Drive:
    """End the execution ``status`` with ``error``, or, if its task has an ``on_failure``
    handler, begin compensation (its steps follow the function's) and drive it."""
    if task.on_failure is None:
        return _end(claim, status, error=error)
    state = begun(failure, len(ctx.recorded), str(status), error)
    store.begin_compensation(claim, state)
    logger.warning("execution %s: %s; compensating", claim.execution_id, failure.error)
    return _compensation(claim, task, ctx.recorded, state, ctx.registry)


def _compensation(
    claim: store.Claim,
    task: DurableTask,
    steps: list[StepResult],
    state: dict[str, Any],
    registry: TaskRegistry,
) -> _Drive:
    """The drive of the ``on_failure`` handler (begun or resumed), free of the execution's
    timeout, its steps recorded from ``state["from_position"]``; once it is done the execution
    ends."""
    assert task.on_failure is not None
    handler = task.on_failure
    ctx = ExecutionContext(
        replace(claim, deadline=None),
        task,
        steps,
        float(conf.get("LEASE")),
        position=int(state["from_position"]),
        registry=registry,
        is_async=iscoroutinefunction(handler),
    )
    failure = Failure(**state["failure"])

    def compensation() -> Any:
        return handler(decode(claim.input, task.input_type, "input"), failure)

    return _Drive(
        ctx, compensation, "compensation result", functools.partial(_compensated, claim, state)
    )


def _compensated(claim: store.Claim, state: dict[str, Any], outcome: str, value: Any) -> str:
    if outcome == Status.FAILED:
        return _end_compensation(claim, state, error=_describe(value))
    return _end_compensation(claim, state, result=value)


def _end_compensation(
    claim: store.Claim, state: dict[str, Any], result: Any = None, error: str = ""
) -> str:
    """End the execution as its failure left it, with its compensation's result or error."""
    status = CompensationStatus.FAILED if error else CompensationStatus.COMPLETED
    logger.log(
        logging.ERROR if error else logging.INFO,
        "execution %s: compensation %s%s",
        claim.execution_id,
        status,
        f": {error.splitlines()[0]}" if error else "",
    )
    ended = {**state, "result": result, "error": error}
    ends_as = state["ends_as"]
    return _end(
        claim, Status(ends_as["status"]), error=ends_as["error"], compensation=(status, ended)
    )


def _block(claim: store.Claim, fatal: NonDeterminismError) -> str:
    store.block(claim, str(fatal))
    logger.error("execution %s: blocked: %s", claim.execution_id, fatal)
    send_blocked(claim.execution_id, str(fatal), task_name=claim.task_name)
    return Status.BLOCKED


_END_LEVELS = {Status.COMPLETED: logging.INFO, Status.TIMED_OUT: logging.WARNING}


def _end(
    claim: store.Claim,
    status: Status,
    output: Any = None,
    error: str = "",
    compensation: tuple[str, dict[str, Any]] | None = None,
) -> str:
    store.finish(claim, status, output=output, error=error, compensation=compensation)
    detail = f": {error.splitlines()[0]}" if error else ""
    level = _END_LEVELS.get(status, logging.ERROR)
    logger.log(level, "execution %s: %s%s", claim.execution_id, status, detail)
    send(
        execution_finished,
        execution_id=claim.execution_id,
        task_name=claim.task_name,
        status=str(status),
        output=output,
        error=error,
    )
    return status


def _describe(exc: BaseException) -> str:
    summary = f"{type(exc).__name__}: {exc}"
    return summary + "\n\n" + "".join(traceback.format_exception(exc)).strip()

"""The client side of the engine: start executions, offer events, wait for, inspect and cancel them,
and begin a new run of one (retry, rerun, restart; see ``zart_django.runs``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import sync_to_async

from . import clock, runs, store
from .codec import check_text, decode, encode, resolve_type
from .compensation import Compensation, shown
from .durations import Duration, parse_duration
from .errors import EventReserved, ExecutionFailed, PayloadError, WaitTimeout
from .models import (
    FINISHED_STATUSES,
    RERUNNABLE_STATUSES,
    RETRYABLE_STATUSES,
    Execution,
    Run,
    RunStart,
    Status,
    StepResult,
)
from .names import check_name
from .registry import DurableTask, TaskRegistry, default_registry
from .reserved import reservation


@dataclass(frozen=True)
class StepInfo:
    """One recorded step, wait or sleep of an execution."""

    position: int
    name: str
    kind: str
    status: str
    result: Any
    error: str
    attempts: int
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class RunInfo:
    """One run of an execution: how it began (``start``, ``retry``, ``rerun`` from ``from_step``,
    ``restart``), its input, how it ended (the execution's status while it is the current run),
    and the steps it recorded, kept ones included."""

    number: int
    began: str
    from_step: str
    input: Any
    status: str
    output: Any
    error: str
    started_at: datetime
    finished_at: datetime | None
    steps: list[StepInfo]


@dataclass(frozen=True)
class ExecutionInfo:
    """A snapshot of an execution, as ``DurableScheduler.get`` returns it: ``steps`` are those of
    the current run (number ``run``); ``runs`` lists every run, oldest first, the current last.

    ``input``, ``output`` and step results are the stored JSON, as the API, the admin and
    ``zart show`` display them, whatever tasks this process registered; ``DurableScheduler.output``
    gives the output rebuilt into the task's declared type, as ``wait_completion`` returns it."""

    id: str
    task: str
    status: str
    input: Any
    output: Any
    error: str
    waiting_on: str
    scheduled_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    steps: list[StepInfo]
    run: int
    runs: list[RunInfo]
    unclaimed_for: timedelta | None = None
    """How long it has been due with no worker claiming it (None if it is not due). Minutes mean
    no running worker has its task's code: a deploy that dropped or has not yet added the task."""
    started_by: str = ""
    """The username of who started it (``start``'s ``started_by``); empty when code did."""
    created: bool = False
    """From ``start``: True when that call stored the execution, False when it found it stored
    already (a repeated, idempotent start). Always False from the other methods."""
    compensation: Compensation | None = None
    """The ``on_failure`` handler's run, once a failure began it: its status, the failure, and
    the handler's result (stored JSON) or error. None if the current run had none."""
    parent: str | None = None
    """The id of the execution that started it with ``start_child`` (None for a top-level one)."""
    children: list[str] = field(default_factory=list)
    """The ids of the executions it started with ``start_child``, oldest first."""

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


PURGE_BATCH = 500
"""Executions ``purge`` deletes per transaction, by default."""


class DurableScheduler:
    """Starts durable executions of the tasks in ``registry`` and talks to them while they run."""

    def __init__(self, registry: TaskRegistry | None = None) -> None:
        self.registry = registry or default_registry

    def start(
        self, execution_id: str, task_name: str, input: Any = None, started_by: Any = None
    ) -> ExecutionInfo:
        """Start task ``task_name`` as ``execution_id`` with ``input``; a worker will run it.

        ``started_by`` (a user or a username) is recorded as who started it: approvals refuse
        that person's decision unless the wait allows it. A repeated start keeps the first.

        Idempotent: starting the same id with the same task and input returns the existing
        execution (its ``created`` is False; True when this call stored it). Raises ``TaskNotFound``, ``PayloadError`` (the id is outside the name alphabet
        of ``zart_django.names``, the input cannot be stored as JSON or does not fit the task's
        input type) or ``ExecutionAlreadyExists`` (the id is taken with another task or input).
        """
        check_name(execution_id, "execution id")
        task = self.registry.get(task_name)
        data = encode(input, "input")
        decode(data, task.input_type, "input")
        execution, created = store.create_execution(
            execution_id, task_name, data, _deadline(task), _username(started_by)
        )
        if created:  # nothing ran yet: no runs, steps or children to read
            return replace(_info(execution, [], [], children=[]), created=True)
        return _info(execution, *store.load_history(execution_id))

    def start_for(
        self, task: DurableTask, execution_id: str, input: Any = None, started_by: Any = None
    ) -> ExecutionInfo:
        """Start the ``@durable`` task ``task`` as ``execution_id`` (see ``start``)."""
        return self.start(execution_id, task.name, input, started_by)

    async def astart_for(
        self, task: DurableTask, execution_id: str, input: Any = None, started_by: Any = None
    ) -> ExecutionInfo:
        """``start_for`` for async code (an ASGI view): the queries run in Django's thread for
        synchronous code (``asgiref.sync.sync_to_async``)."""
        return await sync_to_async(self.start_for)(task, execution_id, input, started_by)

    def offer_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """Deliver event ``name`` to an execution; a wait for it resumes (now or when it gets there).

        Raises ``ExecutionNotFound``, ``ExecutionFinished``, ``EventAlreadyDelivered`` (the first
        delivery wins), ``EventExpired`` (the wait for it passed its deadline), ``EventReserved``
        (the name is an approval's: decide it with ``zart_django.approvals.decide``) or
        ``PayloadError`` (the name is outside the name alphabet, the payload cannot be stored as
        JSON or does not fit the type the task declares for this event in
        ``@durable(events=...)``, or the type its parked wait asks for). Nothing is stored when
        it raises.
        """
        check_name(name, "event name")
        how = reservation(name)
        if how is not None:
            raise EventReserved(name, how)
        self._deliver(execution_id, name, payload)

    async def aoffer_event(self, execution_id: str, name: str, payload: Any = None) -> None:
        """``offer_event`` for async code (see ``astart_for``)."""
        await sync_to_async(self.offer_event)(execution_id, name, payload)

    def _deliver(self, execution_id: str, name: str, payload: Any) -> None:
        check_text(execution_id, "execution id")
        data = encode(payload, f"payload of event {name!r}")

        def validate(task_name: str, parked_type: str) -> None:
            declared = self._event_type(task_name, name)
            expected = declared if declared is not Any else resolve_type(parked_type)
            decode(data, expected, f"payload of event {name!r}")

        store.offer_event(execution_id, name, data, validate)

    def get(self, execution_id: str) -> ExecutionInfo:
        """The execution's status, input, output or error, steps and what it waits on."""
        check_text(execution_id, "execution id")
        execution = store.load_execution(execution_id)
        return _info(execution, *store.load_history(execution_id))

    def retry(self, execution_id: str) -> ExecutionInfo:
        """Continue a failed execution from where it stopped, in a new run: the steps it completed
        are kept (their bodies do not run again), the step that failed runs again with fresh
        attempts; it is pending again with its error cleared and a fresh timeout. A blocked
        execution (its code no longer matched its history) is made due again in the same run,
        to replay on the code deployed since.

        Raises ``ExecutionNotFound``, ``TaskNotFound`` (its task is not in this registry) or
        ``RunRefused`` (its status is not one of ``models.RETRYABLE_STATUSES`` or blocked:
        completed, cancelled, running, waiting... executions are refused). Nothing is stored when
        it raises.
        """
        check_text(execution_id, "execution id")
        if store.resume_blocked(execution_id):
            return self.get(execution_id)
        return self._begin(
            execution_id, RunStart.RETRY, RETRYABLE_STATUSES, runs.retry_keeps, carry_inbox=True
        )

    def rerun(self, execution_id: str, from_step: str) -> ExecutionInfo:
        """Run the execution again from the recorded step ``from_step`` (a name as ``get`` lists
        it: ``name``, ``name#2``... or a wait's event name), in a new run: the steps before it are
        kept; it and every step after it run again, and waits (approvals) after it wait again.
        The results discarded stay in the history of the run they belong to.

        Any execution that is not running right now can be rerun, finished ones included.
        Raises ``ExecutionNotFound``, ``TaskNotFound``, ``StepNotFound`` (naming the recorded
        steps), ``PayloadError`` (a step name no database can hold) or ``RunRefused`` (it is
        running: cancel it first, or wait until it parks or ends).
        """
        check_text(from_step, "step name")
        keep = runs.keep_before(execution_id, from_step)
        return self._begin(
            execution_id, RunStart.RERUN, RERUNNABLE_STATUSES, keep, from_step=from_step
        )

    def restart(self, execution_id: str, input: Any = None) -> ExecutionInfo:
        """Run the execution again from the top in a new run, with its input or, if ``input`` is
        given (not None), with that input, checked as ``start`` checks it.

        Raises like ``rerun``, and ``PayloadError`` for an input that does not fit the task.
        """
        new_input = None
        if input is not None:
            task = self.registry.get(self._task_name(execution_id))
            data = encode(input, "input")
            decode(data, task.input_type, "input")
            new_input = (data,)
        return self._begin(
            execution_id,
            RunStart.RESTART,
            RERUNNABLE_STATUSES,
            runs.keep_none,
            new_input=new_input,
        )

    def _task_name(self, execution_id: str) -> str:
        check_text(execution_id, "execution id")
        return store.load_execution(execution_id).task_name

    def _begin(
        self,
        execution_id: str,
        began: RunStart,
        allowed: Collection[str],
        keep: runs.Keep,
        **options: Any,
    ) -> ExecutionInfo:
        task = self.registry.get(self._task_name(execution_id))
        store.begin_run(execution_id, began, allowed, keep, deadline=_deadline(task), **options)
        return self.get(execution_id)

    def wait_completion(
        self, execution_id: str, timeout: Duration = 60, poll_interval: float = 0.05
    ) -> Any:
        """Block until the execution finishes and return its output, typed as the task declares.

        Raises ``ExecutionFailed`` if it failed, was cancelled or timed out, and ``WaitTimeout``
        if it is still going after ``timeout``.
        """
        check_text(execution_id, "execution id")
        limit = time.monotonic() + parse_duration(timeout).total_seconds()
        while (done := self._completion(execution_id, limit)) is None:
            time.sleep(poll_interval)
        return done[0]

    async def await_completion(
        self, execution_id: str, timeout: Duration = 60, poll_interval: float = 0.05
    ) -> Any:
        """``wait_completion`` for async code: it sleeps with ``asyncio.sleep`` between looks
        (see ``astart_for``), so the event loop serves others meanwhile."""
        check_text(execution_id, "execution id")
        limit = time.monotonic() + parse_duration(timeout).total_seconds()
        while (done := await sync_to_async(self._completion)(execution_id, limit)) is None:
            await asyncio.sleep(poll_interval)
        return done[0]

    def _completion(self, execution_id: str, limit: float) -> tuple[Any] | None:
        """``(output,)`` of a finished execution, None while it goes on; ``ExecutionFailed``,
        or ``WaitTimeout`` once the monotonic clock passes ``limit``."""
        execution = store.load_execution(execution_id)
        if execution.is_finished:
            return (self._outcome(execution),)
        if time.monotonic() >= limit:
            raise WaitTimeout(execution_id, execution.status)
        return None

    def output(self, execution_id: str) -> Any:
        """The output of a finished execution, typed as its task declares (the stored JSON if
        this registry does not have the task), as ``wait_completion`` returns it, without waiting.

        ``get(id).output`` stays the stored JSON on purpose: ``get`` serves any execution, of any
        task and any deploy, to the API and the admin, and one field must not change type with
        the tasks a process registered. Raises ``ExecutionNotFound``, ``ExecutionFailed`` (it
        failed, was cancelled or timed out) or ``WaitTimeout`` (it has not finished yet).
        """
        check_text(execution_id, "execution id")
        execution = store.load_execution(execution_id)
        if not execution.is_finished:
            raise WaitTimeout(execution_id, execution.status)
        return self._outcome(execution)

    def worker_seen_ago(self) -> timedelta | None:
        """How long ago a worker (``run_zart_worker``, or a django-q2 cluster with ``DISPATCH =
        "django_q"``) last looked for work, or None if none ever did. Workers record it about
        every ``store.SEEN_EVERY`` seconds (a cluster at least each minute); one query."""
        seen = store.last_worker_seen()
        return None if seen is None else max(clock.now() - seen, timedelta(0))

    def cancel(self, execution_id: str) -> None:
        """Stop the execution for good: no further step runs and no event resumes it.

        Raises ``ExecutionNotFound``, ``ExecutionFinished``, or ``ExecutionResuming`` when a
        decision it waited for was recorded and it has not acted on it yet (try again once it has).
        """
        check_text(execution_id, "execution id")
        store.cancel(execution_id)

    def purge(
        self,
        older_than: Duration,
        statuses: Iterable[str] = FINISHED_STATUSES,
        dry_run: bool = False,
        batch_size: int = PURGE_BATCH,
    ) -> dict[str, int]:
        """Delete the executions that finished (with one of ``statuses``) more than
        ``older_than`` ago, with their steps, events and approval requests, ``batch_size`` per
        transaction; approval records (the decisions) are kept. Unfinished executions are never
        touched. Returns the rows deleted by kind (``{"executions": 3, "step_results": 9, ...}``),
        or with ``dry_run`` the rows that would be, deleting nothing. Raises ``PayloadError`` for
        a status that is not a finished one or a duration that is not one."""
        try:
            cutoff = clock.now() - parse_duration(older_than)
        except ValueError as exc:
            raise PayloadError(str(exc)) from None
        chosen = list(statuses)
        for status in chosen:
            if status not in FINISHED_STATUSES:
                finished = ", ".join(FINISHED_STATUSES)
                raise PayloadError(
                    f"cannot purge status {status!r}: only finished ones ({finished})"
                )
        if dry_run:
            return store.count_purgeable(cutoff, chosen)
        return store.purge_finished(cutoff, chosen, batch_size)

    def delete(self, execution_ids: Iterable[str]) -> dict[str, int]:
        """Delete these executions if they have finished, as ``purge`` does (decisions are kept;
        unfinished ones are left alone: cancel them first). Returns the rows deleted by kind."""
        ids = [check_text(execution_id, "execution id") for execution_id in execution_ids]
        return store.delete_finished(ids)

    def _event_type(self, task_name: str, event: str) -> Any:
        if task_name not in self.registry:
            return Any
        return self.registry.get(task_name).events.get(event, Any)

    def _outcome(self, execution: Execution) -> Any:
        if execution.status != Status.COMPLETED:
            raise ExecutionFailed(execution.id, execution.status, execution.error)
        output_type = (
            self.registry.get(execution.task_name).output_type
            if execution.task_name in self.registry
            else Any
        )
        return decode(execution.output, output_type, "output")


def deliver_reserved(execution_id: str, name: str, payload: Any) -> None:
    """Deliver an event in a reserved namespace (see ``zart_django.reserved``): the private path
    of the app that reserved it, called inside its own transaction; like ``offer_event`` otherwise.
    """
    DurableScheduler()._deliver(execution_id, name, payload)


USERNAME_LENGTH = 150
"""The longest ``started_by`` stored (Django's username length)."""


def _username(user: Any) -> str:
    """The username of ``user`` (a user object or a username); empty for none or anonymous."""
    if user is None:
        return ""
    if not isinstance(user, str):
        if not getattr(user, "is_authenticated", False):
            return ""
        user = str(user.get_username())
    if len(user) > USERNAME_LENGTH:
        raise PayloadError(f"started_by is longer than {USERNAME_LENGTH} characters")
    return check_text(user, "started_by")


def _deadline(task: DurableTask) -> datetime | None:
    """When a run of ``task`` beginning now times out, if the task has a timeout."""
    return clock.now() + task.timeout if task.timeout else None


def _info(
    execution: Execution,
    past: list[Run],
    steps: list[StepResult],
    children: list[str] | None = None,
) -> ExecutionInfo:
    """What ``get`` shows of ``execution``, with its ended runs and its steps; its children are
    read unless given."""
    by_run: dict[int, list[StepInfo]] = defaultdict(list)
    for s in steps:
        by_run[s.run].append(_step_info(s))
    return ExecutionInfo(
        id=execution.id,
        task=execution.task_name,
        status=execution.status,
        input=execution.input,
        output=execution.output,
        error=execution.error,
        waiting_on=execution.waiting_on,
        scheduled_at=execution.scheduled_at,
        created_at=execution.created_at,
        finished_at=execution.finished_at,
        started_by=execution.started_by,
        unclaimed_for=execution.unclaimed_for(clock.now()),
        steps=by_run[execution.run],
        run=execution.run,
        runs=_runs(execution, {r.number: r for r in past}, by_run),
        compensation=shown(execution.compensation_status, execution.compensation),
        parent=execution.parent_id,
        children=store.child_ids(execution.id) if children is None else children,
    )


def _runs(
    execution: Execution, past: dict[int, Run], steps: dict[int, list[StepInfo]]
) -> list[RunInfo]:
    """Every run of ``execution``: the ended ones from their ``Run``, the current one from the
    execution itself (a first run has no ``Run`` until another begins)."""
    infos = []
    for number in range(1, execution.run + 1):
        row = past.get(number)
        ended = row if number != execution.run else None
        infos.append(
            RunInfo(
                number=number,
                began=row.began if row else RunStart.START,
                from_step=row.from_step if row else "",
                input=row.input if row else execution.input,
                status=ended.status if ended else execution.status,
                output=ended.output if ended else execution.output,
                error=ended.error if ended else execution.error,
                started_at=row.started_at if row else execution.created_at,
                finished_at=ended.finished_at if ended else execution.finished_at,
                steps=steps[number],
            )
        )
    return infos


def _step_info(s: StepResult) -> StepInfo:
    return StepInfo(
        s.position,
        s.name,
        s.kind,
        s.status,
        s.result,
        s.error,
        s.attempts,
        s.started_at,
        s.finished_at,
    )

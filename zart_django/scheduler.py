"""The client side of the engine: start executions, offer events, wait for, inspect and cancel them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from . import clock, store
from .codec import check_text, decode, encode, resolve_type
from .durations import Duration, parse_duration
from .errors import EventReserved, ExecutionFailed, WaitTimeout
from .models import FINISHED_STATUSES, Execution, Status, StepResult
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
class ExecutionInfo:
    """A snapshot of an execution, as ``DurableScheduler.get`` returns it."""

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
    unclaimed_for: timedelta | None = None
    """How long it has been due with no worker claiming it (None if it is not due). Minutes mean
    no running worker has its task's code: a deploy that dropped or has not yet added the task."""

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


class DurableScheduler:
    """Starts durable executions of the tasks in ``registry`` and talks to them while they run."""

    def __init__(self, registry: TaskRegistry | None = None) -> None:
        self.registry = registry or default_registry

    def start(self, execution_id: str, task_name: str, input: Any = None) -> ExecutionInfo:
        """Start task ``task_name`` as ``execution_id`` with ``input``; a worker will run it.

        Idempotent: starting the same id with the same task and input returns the existing
        execution. Raises ``TaskNotFound``, ``PayloadError`` (the id is outside the name alphabet
        of ``zart_django.names``, the input cannot be stored as JSON or does not fit the task's
        input type) or ``ExecutionAlreadyExists`` (the id is taken with another task or input).
        """
        check_name(execution_id, "execution id")
        task = self.registry.get(task_name)
        data = encode(input, "input")
        decode(data, task.input_type, "input")
        deadline = clock.now() + task.timeout if task.timeout else None
        execution = store.create_execution(execution_id, task_name, data, deadline)
        return _info(execution, store.load_steps(execution_id))

    def start_for(self, task: DurableTask, execution_id: str, input: Any = None) -> ExecutionInfo:
        """Start the ``@durable`` task ``task`` as ``execution_id`` (see ``start``)."""
        return self.start(execution_id, task.name, input)

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
        return _info(execution, store.load_steps(execution_id))

    def wait_completion(
        self, execution_id: str, timeout: Duration = 60, poll_interval: float = 0.05
    ) -> Any:
        """Block until the execution finishes and return its output, typed as the task declares.

        Raises ``ExecutionFailed`` if it failed, was cancelled or timed out, and ``WaitTimeout``
        if it is still going after ``timeout``.
        """
        check_text(execution_id, "execution id")
        limit = time.monotonic() + parse_duration(timeout).total_seconds()
        while True:
            execution = store.load_execution(execution_id)
            if execution.is_finished:
                return self._outcome(execution)
            if time.monotonic() >= limit:
                raise WaitTimeout(execution_id, execution.status)
            time.sleep(poll_interval)

    def cancel(self, execution_id: str) -> None:
        """Stop the execution for good: no further step runs and no event resumes it.

        Raises ``ExecutionNotFound``, ``ExecutionFinished``, or ``ExecutionResuming`` when a
        decision it waited for was recorded and it has not acted on it yet (try again once it has).
        """
        check_text(execution_id, "execution id")
        store.cancel(execution_id)

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


def _info(execution: Execution, steps: list[StepResult]) -> ExecutionInfo:
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
        unclaimed_for=execution.unclaimed_for(clock.now()),
        steps=[
            StepInfo(
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
            for s in steps
        ],
    )

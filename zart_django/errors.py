"""Every error zart-django raises, so callers can catch exactly what they mean."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta


class ZartError(Exception):
    """Base class of all zart-django errors."""


class TaskNotFound(ZartError, LookupError):
    """No durable task is registered under this name."""

    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f"; registered tasks: {', '.join(sorted(known))}" if known else ""
        super().__init__(f"unknown task {name!r}{hint}")
        self.name = name


class ExecutionNotFound(ZartError, LookupError):
    """No execution has this id."""

    def __init__(self, execution_id: str) -> None:
        super().__init__(f"no execution with id {execution_id!r}")
        self.execution_id = execution_id


class ScheduleNotFound(ZartError, LookupError):
    """No schedule is stored for this task (a worker stores it when it starts)."""

    def __init__(self, task_name: str) -> None:
        super().__init__(f"no schedule for task {task_name!r}")
        self.task_name = task_name


class ExecutionAlreadyExists(ZartError):
    """An execution with this id exists with another task or another input."""

    def __init__(self, execution_id: str, reason: str) -> None:
        super().__init__(f"execution {execution_id!r} already exists {reason}")
        self.execution_id = execution_id


class ExecutionFinished(ZartError):
    """The execution has already finished, so it takes no event and cannot be cancelled."""

    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(f"execution {execution_id!r} has already finished (status {status})")
        self.execution_id = execution_id
        self.status = status


class EventAlreadyDelivered(ZartError):
    """This event was already delivered to this execution; the first delivery wins."""

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__(f"event {name!r} was already delivered to execution {execution_id!r}")
        self.execution_id = execution_id
        self.name = name


class EventExpired(ZartError):
    """The wait for this event passed its deadline (or the execution's): the event comes too late.

    The workflow takes its timeout path; nothing is stored.
    """

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__(
            f"event {name!r} of execution {execution_id!r} expired: its wait's deadline passed"
        )
        self.execution_id = execution_id
        self.name = name


class EventReserved(ZartError):
    """The event name belongs to a namespace only its own decision path may deliver to (an
    approval is decided with ``zart_django.approvals.decide``, never offered as an event)."""

    def __init__(self, name: str, how: str) -> None:
        super().__init__(f"event {name!r} cannot be offered: {how}")
        self.name = name


class ExecutionResuming(ZartError):
    """The execution has a decision it has not acted on yet, so it cannot be cancelled now."""

    def __init__(self, execution_id: str, name: str) -> None:
        super().__init__(
            f"execution {execution_id!r} cannot be cancelled: the decision {name!r} it was"
            " waiting for was recorded and it is resuming to act on it"
        )
        self.execution_id = execution_id
        self.name = name


class RunRefused(ZartError):
    """A retry, rerun or restart was asked of an execution in a status that does not allow it."""

    _VERBS = {"retry": "retried", "rerun": "rerun", "restart": "restarted"}

    def __init__(self, execution_id: str, action: str, status: str, allowed: Iterable[str]) -> None:
        takes = ", ".join(str(s) for s in allowed)
        super().__init__(
            f"execution {execution_id!r} cannot be {self._VERBS.get(action, action)}: it is"
            f" {status} ({action} takes an execution that is {takes})"
        )
        self.execution_id = execution_id
        self.action = action
        self.status = status


class StepNotFound(ZartError, LookupError):
    """A rerun named a step the execution's current run has not recorded."""

    def __init__(self, execution_id: str, step: str, recorded: list[str]) -> None:
        names = ", ".join(repr(name) for name in recorded) or "none yet"
        super().__init__(
            f"execution {execution_id!r} has no recorded step {step!r}; recorded steps: {names}"
        )
        self.execution_id = execution_id
        self.step = step
        self.recorded = recorded


class PayloadError(ZartError, ValueError):
    """A value does not fit the type it is declared as (an input, an event payload, a result)."""


class NonDeterminismError(ZartError):
    """Replay met a different step than the one recorded at that position: the code changed."""


class TaskError(ZartError):
    """An error raised into a durable function; the function may catch it."""


class StepFailed(TaskError):
    """A step failed and has no retries left."""

    def __init__(self, step: str, error: str, attempts: int) -> None:
        plural = "s" if attempts != 1 else ""
        super().__init__(f"step {step!r} failed after {attempts} attempt{plural}: {error}")
        self.step = step
        self.error = error
        self.attempts = attempts


class StepTimeout(TaskError, TimeoutError):
    """An attempt of an async step ran past the step's ``timeout`` and was cancelled; it counts
    as a failed attempt (retried by the step's policy, then recorded in its ``StepFailed``)."""

    def __init__(self, step: str, attempt: int, timeout: timedelta) -> None:
        super().__init__(
            f"attempt {attempt} of step {step!r} ran past its timeout ({timeout}) and was cancelled"
        )
        self.step = step
        self.attempt = attempt
        self.timeout = timeout


class EventTimeout(TaskError):
    """No event arrived before the wait's deadline."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no event {name!r} arrived before the deadline")
        self.name = name


class ChildFailed(TaskError):
    """A child execution the durable function waited for (``wait_for_child``, ``run_child``)
    ended failed, timed out or cancelled; ``error`` is the child's."""

    def __init__(self, execution_id: str, status: str, error: str) -> None:
        super().__init__(f"child execution {execution_id!r} ended {status}: {error}")
        self.execution_id = execution_id
        self.status = status
        self.error = error


class NotAChild(ZartError):
    """``wait_for_child`` was asked to wait for an execution the waiting one did not start
    with ``start_child``."""

    def __init__(self, execution_id: str, parent_id: str) -> None:
        super().__init__(
            f"execution {execution_id!r} is not a child of {parent_id!r}: start it with"
            " start_child before waiting for it"
        )
        self.execution_id = execution_id
        self.parent_id = parent_id


class ExecutionFailed(ZartError):
    """Raised by ``wait_completion``: the execution ended failed, cancelled or timed out."""

    def __init__(self, execution_id: str, status: str, error: str) -> None:
        super().__init__(f"execution {execution_id!r} ended {status}: {error}")
        self.execution_id = execution_id
        self.status = status
        self.error = error


class WaitTimeout(ZartError, TimeoutError):
    """``wait_completion`` gave up before the execution finished (or ``output`` was asked of one
    that has not finished); the execution goes on."""

    def __init__(self, execution_id: str, status: str) -> None:
        super().__init__(
            f"execution {execution_id!r} had not finished when the wait ended (status {status})"
        )
        self.execution_id = execution_id
        self.status = status


class LeaseLost(BaseException):
    """Internal: this worker no longer owns the execution (its lease expired or it was cancelled).

    A ``BaseException`` so that a durable function's ``except Exception`` cannot swallow it.
    """


class Suspended(BaseException):
    """Internal: the execution parked (a wait, a sleep or a retry delay) and will resume later.

    A ``BaseException`` so that a durable function's ``except Exception`` cannot swallow it.
    """


class DatabaseUnavailable(BaseException):
    """Internal: a query of the engine failed on the database (a cut connection, a restart, a busy
    SQLite file) while it ran an execution; the execution is handed back to be resumed.

    A ``BaseException`` so that a durable function's ``except Exception`` cannot swallow it.
    """

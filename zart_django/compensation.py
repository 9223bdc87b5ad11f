"""Compensation: what a task's ``on_failure`` handler is told, and what the execution keeps of it.

When an execution of a task declared with ``@durable(..., on_failure=handler)`` fails or times
out, the engine calls ``handler(data, failure)`` durably (its steps are checkpointed like any
others, after the failed function's) before it ends the execution; the execution's final status
stays ``failed`` or ``timed_out``. The handler's return value is the execution's recorded
compensation result.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .errors import StepFailed


@dataclass(frozen=True)
class Failure:
    """What ended the execution: ``step``, the step whose failure did (``""`` when the function's
    own code raised, or the timeout struck); ``error``, its first line; ``timed_out``, whether
    the execution's timeout passed."""

    step: str
    error: str
    timed_out: bool


@dataclass(frozen=True)
class Compensation:
    """An execution's compensation, as ``DurableScheduler.get`` shows it: ``status`` is
    ``running``, ``completed`` (``result`` is the handler's return value, as stored JSON) or
    ``failed`` (``error`` says why)."""

    status: str
    failure: Failure
    result: Any
    error: str


def failure_of(exc: BaseException) -> Failure:
    """The failure an exception that ended the durable function stands for."""
    cause: BaseException | None = exc
    step = ""
    while cause is not None and not step:
        step = cause.step if isinstance(cause, StepFailed) else ""
        cause = cause.__cause__ or cause.__context__
    return Failure(step=step, error=f"{type(exc).__name__}: {exc}", timed_out=False)


def begun(failure: Failure, position: int, status: str, error: str) -> dict[str, Any]:
    """What is stored when compensation begins: the failure, the position its steps start at, and
    how the execution ends (its status and error) once the handler is done."""
    return {
        "failure": asdict(failure),
        "from_position": position,
        "ends_as": {"status": status, "error": error},
        "result": None,
        "error": "",
    }


def shown(status: str, stored: dict[str, Any] | None) -> Compensation | None:
    """The stored compensation as ``Compensation`` (None if the execution had none)."""
    if not status or stored is None:
        return None
    return Compensation(status, Failure(**stored["failure"]), stored["result"], stored["error"])

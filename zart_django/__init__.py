"""zart-django: durable execution with human approvals, in your Django database.

The whole public surface::

    from zart_django import durable, step, wait_for_event, sleep, patched, DurableScheduler
    from zart_django import parallel, now, start_child, wait_for_any     # the workflow language

    @step("validate-request")                     # a checkpointed step (alias: zart_step)
    def validate(request: Request) -> str: ...

    @durable("approval-task", timeout="5m")       # a durable task (alias: zart_durable)
    def approval_task(data: Request) -> Output:
        validate(data)
        if patched("check-budget"):               # a change executions in flight must not see
            check_budget(data)
        asked_at = now()                          # recorded: replays return the same (uuid4,
                                                  # random, capture(name, fn) likewise)
        decision = wait_for_event("manager-approval", timeout="120s", type=Decision)
        ...

    scheduler = DurableScheduler()                # or DurableScheduler(TaskRegistry())
    scheduler.start_for(approval_task, "approval-1", Request(...))
    scheduler.offer_event("approval-1", "manager-approval", Decision(...))
    output = scheduler.wait_completion("approval-1", timeout="60s")
    scheduler.retry("approval-1")                 # or rerun(id, from_step=...), restart(id)

    @durable("onboard")                           # child executions, parked on while they run
    def onboard(team: Team) -> list[Account]:
        return [run_child(create_account, f"account-{m}", m) for m in team.members]

    @step("fetch-rate", timeout="30s")            # async def steps and functions: every step,
    async def fetch_rate(currency: str) -> float: ...   # wait and recorded value is awaited

    @durable("convert")
    async def convert(order: Order) -> float:
        rate = await fetch_rate(order.currency)   # an attempt past 30 s is cancelled: StepTimeout
        await sleep("settle", "1h")
        return order.amount * rate
    # ASGI views: await scheduler.astart_for(...), aoffer_event(...), await_completion(...)

Workers run executions: ``python manage.py run_zart_worker``. Errors live in
``zart_django.errors`` and are re-exported here. Names are imported lazily, so importing this
package never touches the models before Django is set up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zart_django.lazy import exporter

_EXPORTS = {
    "durable": "registry",
    "zart_durable": "registry",
    "DurableTask": "registry",
    "TaskRegistry": "registry",
    "default_registry": "registry",
    "step": "replay",
    "zart_step": "replay",
    "wait_for_event": "replay",
    "wait_for_any": "replay",
    "current_execution_id": "replay",
    "sleep": "replay",
    "patched": "replay",
    "parallel": "parallel",
    "start_child": "children",
    "wait_for_child": "children",
    "run_child": "children",
    "now": "values",
    "uuid4": "values",
    "random": "values",
    "capture": "values",
    "Failure": "compensation",
    "Compensation": "compensation",
    "DurableScheduler": "scheduler",
    "ExecutionInfo": "scheduler",
    "StepInfo": "scheduler",
    "RunInfo": "scheduler",
    "RetryPolicy": "retry",
    "parse_duration": "durations",
    "Duration": "durations",
    "Worker": "worker",
    "ScheduleInfo": "schedules",
    "ScheduleNotFound": "errors",
    "ZartError": "errors",
    "TaskError": "errors",
    "TaskNotFound": "errors",
    "ExecutionNotFound": "errors",
    "ExecutionAlreadyExists": "errors",
    "ExecutionFinished": "errors",
    "ExecutionFailed": "errors",
    "EventAlreadyDelivered": "errors",
    "EventTimeout": "errors",
    "EventExpired": "errors",
    "EventReserved": "errors",
    "ExecutionResuming": "errors",
    "RunRefused": "errors",
    "StepNotFound": "errors",
    "StepFailed": "errors",
    "StepTimeout": "errors",
    "ChildFailed": "errors",
    "NotAChild": "errors",
    "PayloadError": "errors",
    "NonDeterminismError": "errors",
    "WaitTimeout": "errors",
}

__all__ = [
    "ChildFailed",
    "Compensation",
    "DurableScheduler",
    "DurableTask",
    "Duration",
    "EventAlreadyDelivered",
    "EventExpired",
    "EventReserved",
    "EventTimeout",
    "ExecutionAlreadyExists",
    "ExecutionFailed",
    "ExecutionFinished",
    "ExecutionInfo",
    "ExecutionNotFound",
    "ExecutionResuming",
    "Failure",
    "NonDeterminismError",
    "NotAChild",
    "PayloadError",
    "RetryPolicy",
    "RunInfo",
    "RunRefused",
    "ScheduleInfo",
    "ScheduleNotFound",
    "StepFailed",
    "StepInfo",
    "StepNotFound",
    "StepTimeout",
    "TaskError",
    "TaskNotFound",
    "TaskRegistry",
    "WaitTimeout",
    "Worker",
    "ZartError",
    "capture",
    "current_execution_id",
    "default_registry",
    "durable",
    "now",
    "parallel",
    "parse_duration",
    "patched",
    "random",
    "run_child",
    "sleep",
    "start_child",
    "step",
    "uuid4",
    "wait_for_any",
    "wait_for_child",
    "wait_for_event",
    "zart_durable",
    "zart_step",
]


__getattr__ = exporter(__name__, _EXPORTS)


if TYPE_CHECKING:
    from .children import run_child, start_child, wait_for_child
    from .compensation import Compensation, Failure
    from .durations import Duration, parse_duration
    from .errors import (
        ChildFailed,
        EventAlreadyDelivered,
        EventExpired,
        EventReserved,
        EventTimeout,
        ExecutionAlreadyExists,
        ExecutionFailed,
        ExecutionFinished,
        ExecutionNotFound,
        ExecutionResuming,
        NonDeterminismError,
        NotAChild,
        PayloadError,
        RunRefused,
        ScheduleNotFound,
        StepFailed,
        StepNotFound,
        StepTimeout,
        TaskError,
        TaskNotFound,
        WaitTimeout,
        ZartError,
    )
    from .parallel import parallel
    from .registry import DurableTask, TaskRegistry, default_registry, durable, zart_durable
    from .replay import (
        current_execution_id,
        patched,
        sleep,
        step,
        wait_for_any,
        wait_for_event,
        zart_step,
    )
    from .retry import RetryPolicy
    from .scheduler import DurableScheduler, ExecutionInfo, RunInfo, StepInfo
    from .schedules import ScheduleInfo
    from .values import capture, now, random, uuid4
    from .worker import Worker

"""Durable tasks, the ``durable`` decorator, and the registries that find tasks by name."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from asgiref.sync import iscoroutinefunction

from .durations import Duration, parse_duration
from .errors import TaskNotFound
from .recurrence import ScheduleSpec, check_scheduled_task, make_spec


@dataclass(frozen=True)
class DurableTask:
    """A function registered as a durable task; ``input_type``/``output_type`` come from its hints."""

    name: str
    fn: Callable[..., Any]
    timeout: timedelta | None = None
    events: Mapping[str, Any] = field(default_factory=dict)
    on_failure: Callable[[Any, Any], Any] | None = None
    """``handler(data, failure)``, run durably when an execution fails or times out."""
    schedule: ScheduleSpec | None = None
    """When the task recurs (``@durable(schedule=...)`` or ``every=``), else None."""

    @functools.cached_property
    def _parameters(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.fn).parameters.values())

    @functools.cached_property
    def input_type(self) -> Any:
        if not self._parameters:
            return type(None)
        return typing.get_type_hints(self.fn).get(self._parameters[0].name, Any)

    @functools.cached_property
    def output_type(self) -> Any:
        return typing.get_type_hints(self.fn).get("return", Any)

    @functools.cached_property
    def is_async(self) -> bool:
        """Whether the function or its ``on_failure`` handler is ``async def``: a worker runs
        its executions on its event loop."""
        return iscoroutinefunction(self.fn) or (
            self.on_failure is not None and iscoroutinefunction(self.on_failure)
        )

    def invoke(self, input_value: Any) -> Any:
        """Call the function with its input (or with nothing, if it takes no argument); for an
        ``async def`` function, the coroutine to await."""
        if self._parameters:
            return self.fn(input_value)
        return self.fn()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)


class TaskRegistry:
    """Maps task names to durable tasks. A scheduler and its workers share one registry."""

    def __init__(self) -> None:
        self._tasks: dict[str, DurableTask] = {}

    def register(self, name: str, task: DurableTask | Callable[..., Any]) -> DurableTask:
        """Register ``task`` (a ``@durable`` task or a plain function) under ``name``."""
        if isinstance(task, DurableTask):
            entry = replace(task, name=name)
        else:
            entry = DurableTask(name, task)
        existing = self._tasks.get(name)
        if existing is not None and existing.fn is not entry.fn:
            raise ValueError(f"a different task is already registered as {name!r}")
        self._tasks[name] = entry
        return entry

    def get(self, name: str) -> DurableTask:
        """The task registered as ``name``; raise ``TaskNotFound`` listing the known names."""
        try:
            return self._tasks[name]
        except KeyError:
            raise TaskNotFound(name, list(self._tasks)) from None

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def __contains__(self, name: object) -> bool:
        return name in self._tasks


default_registry = TaskRegistry()


def durable(
    name: str,
    *,
    timeout: Duration | None = None,
    events: Mapping[str, Any] | None = None,
    registry: TaskRegistry | None = None,
    schedule: str | None = None,
    every: Duration | None = None,
    timezone: str | None = None,
    overlap: str | None = None,
    on_failure: Callable[[Any, Any], Any] | None = None,
) -> Callable[[Callable[..., Any]], DurableTask]:
    """Make a function a durable task named ``name`` and register it (in the default registry).

    The function takes one argument, the input, whose type annotation is used to rebuild it from
    JSON; its return annotation types the output. ``timeout`` bounds the whole execution.
    ``events`` maps event names to payload types: ``offer_event`` checks every payload against
    it, even one that arrives before the wait, and ``wait_for_event`` returns that type.
    ``on_failure(data, failure)`` runs durably when an execution fails or times out (its steps
    checkpointed like the function's); ``data`` is the input, ``failure`` a
    ``zart_django.Failure``; its return value is stored as the compensation result.

    ``schedule`` (a cron expression, read in ``timezone``: default ``settings.TIME_ZONE``) or
    ``every`` (a period) makes the task recur, ``overlap`` ("skip", "queue", "allow") saying what
    a tick does while the previous occurrence runs: see ``zart_django.schedules``. A parameter
    of a scheduled task, annotated ``datetime``, receives the occurrence's time.
    """
    spec = None
    if schedule is not None or every is not None or timezone is not None or overlap is not None:
        spec = make_spec(schedule, every, timezone, overlap)

    def decorate(fn: Callable[..., Any]) -> DurableTask:
        limit = parse_duration(timeout) if timeout is not None else None
        task = DurableTask(
            name, fn, limit, dict(events or {}), schedule=spec, on_failure=on_failure
        )
        if spec is not None:
            check_scheduled_task(task.name, task.input_type)
        (registry or default_registry).register(name, task)
        return task

    return decorate


zart_durable = durable

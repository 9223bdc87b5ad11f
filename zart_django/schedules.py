"""Recurring executions: ``@durable(..., schedule="0 2 * * *")`` or ``every="15m"``.

A schedule starts one execution per tick, its *occurrence*, with the id ``<task>@<tick in UTC,
to the second>`` (``nightly-report@2026-11-26T02:00:00``) through the idempotent start: two
workers ticking at once store it once. Every worker syncs the schedules of its tasks into the
``Schedule`` table when it starts and ticks the due ones on each pass of its claim loop, under a
row lock, advancing ``next_run_at`` in the transaction that starts the occurrence. Times are the
database's clock (with the engine clock's test shift).

A worker that was down over several ticks starts one occurrence, for the latest tick that passed,
then goes on with the schedule. ``overlap`` says what a tick does while the previous occurrence
is unfinished: ``skip`` lets the tick pass, ``queue`` holds it until the previous one finishes
and starts it then (ticks held meanwhile make one occurrence, as a catch-up does), ``allow``
starts it anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import store
from .models import Schedule
from .recurrence import ScheduleSpec, default_timezone, occurrence_id
from .registry import DurableTask, TaskRegistry, default_registry

TICK_BATCH = 50
"""Due schedules one worker ticks per pass, at most."""


def spec_of(row: Schedule) -> ScheduleSpec:
    """The schedule a stored row describes."""
    return ScheduleSpec(row.cron, row.every, row.timezone, row.overlap)


def _next_after(row: Schedule, now: datetime) -> datetime:
    return spec_of(row).after(now)


def sync(registry: TaskRegistry | None = None) -> None:
    """Store the schedules of ``registry``'s tasks (the default registry's if not given) (a new or changed one is next due at its first
    tick after now; an unchanged one keeps its due time), and mark inactive the stored schedules
    of tasks ``registry`` has without one (the code no longer schedules them). Schedules of tasks
    it does not know are left to the workers that have them."""
    registry = registry or default_registry
    wanted = []
    unscheduled = []
    for name in registry.names():
        spec = registry.get(name).schedule
        if spec is None:
            unscheduled.append(name)
            continue
        wanted.append(
            Schedule(
                task_name=name,
                cron=spec.cron,
                every=spec.every,
                timezone=spec.timezone or default_timezone(),
                overlap=spec.overlap,
            )
        )
    store.sync_schedules(wanted, unscheduled, _next_after)


def tick(registry: TaskRegistry | None = None) -> list[str]:
    """Start the occurrences of ``registry``'s schedules that are due (see the module's
    docstring); return the ids of the executions this call stored. A worker calls it on every
    pass; a test calls it after ``advance_time``, then ``run_until_idle``."""
    registry = registry or default_registry
    scheduled = [name for name in registry.names() if registry.get(name).schedule is not None]
    if not scheduled:
        return []

    def plan(row: Schedule, now: datetime) -> store.Occurrence:
        spec = spec_of(row)
        at = spec.latest(now)
        task = registry.get(row.task_name)
        return store.Occurrence(
            execution_id=occurrence_id(row.task_name, at),
            at=at,
            input=_input(task, at.astimezone(spec.zone)),
            deadline=now + task.timeout if task.timeout is not None else None,
            next_run_at=spec.after(at),
        )

    return store.tick_schedules(scheduled, plan, TICK_BATCH)


def _input(task: DurableTask, at: datetime) -> Any:
    """What the occurrence is given: the tick's time (in the schedule's zone), if it takes it."""
    return None if task.input_type is type(None) else at.isoformat()


@dataclass(frozen=True)
class ScheduleInfo:
    """A stored schedule, as ``zart schedules`` and the admin show it. ``active`` is False once
    a worker whose code has the task without a schedule started (the schedule was removed)."""

    task: str
    expression: str
    timezone: str
    overlap: str
    next_run_at: datetime | None
    last_occurrence: str
    paused: bool
    active: bool


def _info(row: Schedule) -> ScheduleInfo:
    return ScheduleInfo(
        task=row.task_name,
        expression=spec_of(row).describe(),
        timezone=row.timezone,
        overlap=row.overlap,
        next_run_at=row.next_run_at,
        last_occurrence=row.last_occurrence,
        paused=row.paused,
        active=row.active,
    )


def list_schedules() -> list[ScheduleInfo]:
    """Every stored schedule, by task name."""
    return [_info(row) for row in store.load_schedules()]


def pause(task_name: str) -> ScheduleInfo:
    """Stop starting occurrences of ``task_name``'s schedule (those running go on); raise
    ``ScheduleNotFound`` if it has none stored."""
    return _info(store.set_schedule_paused(task_name, True, _next_after))


def resume(task_name: str) -> ScheduleInfo:
    """Start occurrences of a paused schedule again, from its next tick after now: ticks that
    passed while it was paused are not caught up. Raise ``ScheduleNotFound`` if it has none."""
    return _info(store.set_schedule_paused(task_name, False, _next_after))

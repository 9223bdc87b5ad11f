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
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings

from . import store
from .durations import Duration, parse_duration
from .models import Overlap, Schedule
from .names import check_name
from .registry import DurableTask, TaskRegistry, default_registry

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where ``every`` counts its ticks from: ``every="15m"`` ticks at :00, :15, :30 and :45."""
SECOND = timedelta(seconds=1)
TICK_BATCH = 50
"""Due schedules one worker ticks per pass, at most."""


@dataclass(frozen=True)
class ScheduleSpec:
    """When a task recurs: a cron expression (in ``timezone``) or a fixed period, and what a tick
    does while the previous occurrence is unfinished (``overlap``). An empty ``timezone`` means
    ``settings.TIME_ZONE`` (UTC without one), resolved when a worker syncs the schedule."""

    cron: str = ""
    every: timedelta | None = None
    timezone: str = ""
    overlap: str = Overlap.SKIP.value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone or default_timezone())

    def describe(self) -> str:
        """The expression as people read it: the cron line, or ``every 0:15:00``."""
        return self.cron or f"every {self.every}"

    def after(self, moment: datetime) -> datetime:
        """The first tick strictly after ``moment`` (aware, UTC)."""
        if self.every is not None:
            return _floor(moment, self.every) + self.every
        local = moment.astimezone(self.zone)
        return croniter(self.cron, local).get_next(datetime).astimezone(UTC)

    def latest(self, moment: datetime) -> datetime:
        """The last tick at or before ``moment`` (aware, UTC)."""
        if self.every is not None:
            return _floor(moment, self.every)
        following = self.after(moment).astimezone(self.zone)
        return croniter(self.cron, following).get_prev(datetime).astimezone(UTC)


def _floor(moment: datetime, period: timedelta) -> datetime:
    """The last multiple of ``period`` since ``EPOCH`` at or before ``moment``."""
    return EPOCH + (moment - EPOCH) // period * period


def default_timezone() -> str:
    """The time zone of a schedule that names none: ``settings.TIME_ZONE``, else UTC."""
    return getattr(settings, "TIME_ZONE", None) or "UTC"


def make_spec(
    schedule: str | None, every: Duration | None, timezone: str | None, overlap: str | None
) -> ScheduleSpec | None:
    """The ``ScheduleSpec`` of ``@durable``'s arguments (None for a task that does not recur);
    raise ``ValueError`` saying what is wrong with them."""
    if schedule is None and every is None:
        if timezone is not None or overlap is not None:
            raise ValueError("timezone and overlap apply to a schedule: give schedule= or every=")
        return None
    if schedule is not None and every is not None:
        raise ValueError("give schedule= (a cron expression) or every= (a period), not both")
    if overlap is not None and overlap not in Overlap.values:
        raise ValueError(f"overlap must be one of {', '.join(Overlap.values)}, not {overlap!r}")
    if timezone is not None:
        _check_timezone(timezone)
    period = None
    if every is not None:
        period = parse_duration(every)
        if period < SECOND or period % SECOND:
            raise ValueError(f"every must be a whole number of seconds, at least 1, not {every!r}")
    elif not isinstance(schedule, str) or not croniter.is_valid(schedule):
        raise ValueError(
            f"not a cron expression: {schedule!r} (five fields, e.g. '0 2 * * *'; a sixth for"
            " seconds)"
        )
    return ScheduleSpec(schedule or "", period, timezone or "", overlap or Overlap.SKIP.value)


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')"
        ) from None


def occurrence_id(task_name: str, at: datetime) -> str:
    """The execution id of the occurrence of ``task_name`` for the tick ``at``."""
    return f"{task_name}@{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S}"


def check_scheduled_task(task: DurableTask) -> None:
    """Raise if ``task`` cannot recur: its occurrence ids would leave the name alphabet, or it
    takes a parameter not annotated ``datetime`` (a parameter receives the tick's time)."""
    check_name(occurrence_id(task.name, EPOCH), f"occurrence id of task {task.name!r}")
    if task.input_type not in (type(None), datetime):
        raise TypeError(
            f"scheduled task {task.name!r}: its parameter receives the occurrence's time;"
            f" annotate it `datetime` (or take no parameter), not {task.input_type!r}"
        )


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

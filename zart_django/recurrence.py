"""When a task recurs: ``ScheduleSpec`` (a cron expression in a time zone, or a fixed period,
and the overlap policy), built and checked from ``@durable``'s arguments, and the deterministic
id of each occurrence. Pure values: the ticking itself is ``zart_django.schedules``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from django.conf import settings

from .durations import Duration, parse_duration
from .models import Overlap
from .names import check_name

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
"""Where ``every`` counts its ticks from: ``every="15m"`` ticks at :00, :15, :30 and :45."""
SECOND = timedelta(seconds=1)


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


def check_scheduled_task(name: str, input_type: Any) -> None:
    """Raise if task ``name``, taking ``input_type``, cannot recur: its occurrence ids would leave
    the name alphabet, or it takes a parameter not annotated ``datetime`` (a parameter receives
    the tick's time)."""
    check_name(occurrence_id(name, EPOCH), f"occurrence id of task {name!r}")
    if input_type not in (type(None), datetime):
        raise TypeError(
            f"scheduled task {name!r}: its parameter receives the occurrence's time;"
            f" annotate it `datetime` (or take no parameter), not {input_type!r}"
        )

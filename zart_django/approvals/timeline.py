"""What a workflow did so far, in plain words, for the person asked to decide: one line per step,
wait or sleep of the current run, from ``DurableScheduler.get`` (the public API)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from zart_django import DurableScheduler
from zart_django.models import StepKind, StepStatus
from zart_django.scheduler import StepInfo

from .waiting import NAMESPACE, describe, field_order

STATES = {
    StepStatus.COMPLETED: gettext_lazy("completed"),
    StepStatus.FAILED: gettext_lazy("failed"),
    StepStatus.RETRYING: gettext_lazy("retrying"),
    StepStatus.WAITING: gettext_lazy("waiting"),
    StepStatus.TIMED_OUT: gettext_lazy("timed out"),
}


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: what happened, its state, and when (finished, else started)."""

    what: str
    state: str
    status: str
    when: datetime


@dataclass(frozen=True)
class Story:
    """The execution's input in readable lines, and its timeline."""

    input: str
    entries: list[Entry]


def story_of(execution_id: str) -> Story:
    """The input and the timeline of the execution's current run (patch markers left out)."""
    scheduler = DurableScheduler()
    info = scheduler.get(execution_id)
    readable = describe(info.input, field_order(scheduler, info.task))
    entries = [_entry(step) for step in info.steps if step.kind != StepKind.PATCH]
    return Story(input=readable, entries=entries)


def _entry(step: StepInfo) -> Entry:
    return Entry(
        what=_what(step),
        state=str(STATES.get(step.status, step.status)),
        status=step.status,
        when=step.finished_at or step.started_at,
    )


def _what(step: StepInfo) -> str:
    if step.kind == StepKind.EVENT and step.name.startswith(NAMESPACE):
        return _("Approval “%(event)s”") % {"event": step.name.removeprefix(NAMESPACE)}
    if step.kind == StepKind.EVENT:
        return _("Waiting for event “%(event)s”") % {"event": step.name}
    if step.kind == StepKind.SLEEP:
        return _("Pause “%(name)s”") % {"name": step.name}
    return _("Step “%(name)s”") % {"name": step.name}

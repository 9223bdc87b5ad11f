"""Runs: what a retry, a rerun and a restart keep of the run they replace.

Every execution has numbered runs (``Execution.run``, 1 at the start). A retry, a rerun or a
restart begins the next run; nothing of the earlier runs is changed or deleted. The new run starts
with *copies* of the steps it keeps (their results, attempts and times), then the function replays
from the top as always and runs the rest anew.

Why a new run with copies, rather than marking rows "superseded" in one shared history:

- Replay stays what it was: one query for the steps of one run (``run = Execution.run``), matched
  by position; no filter on flags, no gaps in positions, no rule about which of two rows at one
  position counts.
- Each run is complete on its own: its timeline shows every step it stood on, and the rows of a
  finished run are never written again (a flag would be written after the fact). How a run
  ended (status, output, error) is kept in a ``Run`` row when the next begins.
- The cost is one insert of the kept rows per retry or rerun: small, and only when a person asks.

The inbox (``Event``), approval requests and decisions are per run in the same way: a wait that a
new run keeps keeps its event and its decided request; a wait the new run reaches again asks
again (a new request, a decision of its own), and the decisions of earlier runs stay in the audit
log, shown with the run they decided.

What each keeps of the run it replaces:

- ``retry`` (a failed execution): every step up to the one that failed, which runs again with
  fresh attempts; events offered to the run and not consumed yet stay in the inbox, and a wait
  whose event (or decision) was offered is kept, so it takes that event instead of asking again.
  A wait with nothing offered yet is reached anew: it waits (an approval asks) again.
- ``rerun(from_step=...)``: the steps before ``from_step``; that step and everything after it run
  again, and the waits among them wait (and approvals ask) again.
- ``restart``: nothing; the function runs from the top, with the same or a new input.

Each new run gets a fresh execution timeout (``@durable(timeout=...)`` counted from its start).
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from .errors import StepNotFound
from .models import StepKind, StepResult, StepStatus

_UNFINISHED = (StepStatus.WAITING, StepStatus.RETRYING)


def retry_keeps(steps: list[StepResult], offered: Collection[str]) -> list[StepResult]:
    """What a retry keeps: every step up to the first that had not finished (a step between
    attempts, a wait whose event is not among ``offered``), less the failure that ended the run,
    which runs again with fresh attempts: a failed step at the end, or the failed members of the
    ``parallel`` group at the end (its finished members are kept: they never run twice)."""
    end = next((n for n, row in enumerate(steps) if _unfinished(row, offered)), len(steps))
    edge = steps[end] if end < len(steps) else (steps[-1] if steps else None)
    if edge is not None and edge.parallel_group is not None:
        base = edge.parallel_group
        members = [row for row in steps if row.parallel_group == base and row.position >= base]
        if any(row.status != StepStatus.COMPLETED for row in members):
            before = [row for row in steps[:end] if row.position < base]
            return before + [row for row in members if row.status == StepStatus.COMPLETED]
    kept = steps[:end]
    if kept and kept[-1].kind == StepKind.STEP and kept[-1].status == StepStatus.FAILED:
        kept.pop()
    return kept


def _unfinished(row: StepResult, offered: Collection[str]) -> bool:
    """Whether a retry must reach ``row`` anew: a step between attempts, or a wait that is still
    waiting with nothing offered for it."""
    if any(name in offered for name in row.awaited):
        return False
    return row.status in _UNFINISHED


Keep = Callable[[list[StepResult], Collection[str]], list[StepResult]]
"""What a new run keeps of the steps of the run it replaces, given the names in its inbox."""


def keep_before(execution_id: str, step: str) -> Keep:
    """What a rerun from ``step`` keeps: the steps recorded before it (``StepNotFound``, naming
    the recorded steps, if the run has not recorded it)."""

    def keep(steps: list[StepResult], offered: Collection[str]) -> list[StepResult]:
        for index, row in enumerate(steps):
            if row.name == step:
                return steps[:index]
        raise StepNotFound(execution_id, step, [row.name for row in steps])

    return keep


def keep_none(steps: list[StepResult], offered: Collection[str]) -> list[StepResult]:
    """What a restart keeps: nothing."""
    return []

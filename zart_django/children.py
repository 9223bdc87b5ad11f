"""Child executions: a durable function starts other durable executions and waits for them.

``start_child`` starts one as a step (``start-child:<id>``): its id is recorded, so a replay
returns it without starting anything, and the start itself is the idempotent start, so a worker
killed between the start and its checkpoint starts nothing twice. The child records its parent
(``Execution.parent``) and who started it (the parent's ``started_by``, so an approval inside
the child refuses the person who started the parent).

``wait_for_child`` is a wait for the reserved event ``child:<id>``: ``store.finish`` delivers
the child's end to the parent in the transaction that ends the child, so an end that comes
before the parent waits is kept in its inbox, and a parent parked on it is resumed. Only that
path delivers there: ``offer_event`` refuses the namespace.

In an ``async def`` durable function the three are awaited (``await run_child(...)``); a child
is any durable task, async or not.
"""

from __future__ import annotations

from typing import Any

from . import clock, store
from .codec import decode, encode
from .durations import Duration
from .errors import ChildFailed, ExecutionNotFound, NotAChild, PayloadError
from .models import Status
from .names import MAX_LENGTH, check_name
from .registry import DurableTask
from .replay import (
    ExecutionContext,
    _require_context,
    awaitable_in_async,
    step,
    wait_for_event,
    wait_recorded,
)
from .reserved import reserve

START_STEP = "start-child:"
"""The prefix of the step that starts a child: ``start-child:<id>``."""
MAX_CHILD_ID = MAX_LENGTH - len(START_STEP)
"""The longest child id: its start step's name must fit the name alphabet's 200 characters."""


def reserve_child_events() -> None:
    """Make ``offer_event`` refuse ``child:<id>``: only a child's end is delivered there. Not
    binding: a parent resuming on its child's end can still be cancelled."""
    reserve(
        store.CHILD_EVENTS,
        "it is a child execution's end, delivered to its parent when the child finishes",
        binding=False,
    )


@awaitable_in_async
def start_child(task: DurableTask | str, execution_id: str, data: Any = None) -> str:
    """Start ``task`` (a ``@durable`` task or its name) as ``execution_id`` with input ``data``,
    as a child of the running durable function, and return the child's id.

    Recorded as the step ``start-child:<id>``: a replay returns the id and starts nothing; a
    second call with the same id is the idempotent start (same task and input: the same child).
    Raises ``PayloadError`` (an id outside the name alphabet or longer than ``MAX_CHILD_ID``,
    an input that does not fit the task), ``TaskNotFound``; ``StepFailed`` when the id is taken
    by another execution (another task, input or parent).
    """
    ctx = _require_context("start_child")
    _check_child_id(execution_id)
    child = ctx.registry.get(task) if isinstance(task, str) else task
    what = f"input of child execution {execution_id!r}"
    payload = encode(data, what)
    decode(payload, child.input_type, what)

    @store.engine_io
    def start(task_name: str, child_id: str) -> str:
        parent = store.load_execution(ctx.execution_id)
        deadline = clock.now() + child.timeout if child.timeout else None
        store.create_execution(
            child_id, task_name, payload, deadline, parent.started_by, parent_id=parent.pk
        )
        return child_id

    return step(START_STEP + execution_id)(start)(child.name, execution_id)


@awaitable_in_async
def wait_for_child(execution_id: str, timeout: Duration | None = None) -> Any:
    """Park until the child ``execution_id`` (started with ``start_child``) ends, holding no
    thread, and return its output, typed as its task declares.

    Raises ``ChildFailed`` (naming the child and its error) if it failed, timed out or was
    cancelled, ``EventTimeout`` past ``timeout`` (the child goes on), ``NotAChild`` or
    ``ExecutionNotFound`` for an id this execution did not start as a child. An end that came
    before the wait is taken at once; after a rerun or restart of the parent, the end of a child
    that finished earlier is taken too.
    """
    ctx = _require_context("wait_for_child")
    _check_child_id(execution_id)
    name = store.child_event(execution_id)
    if not wait_recorded(name):
        _collect_if_ended(ctx, execution_id)
    end = wait_for_event(name, timeout=timeout)
    return _output(ctx, execution_id, end)


@awaitable_in_async
def run_child(
    task: DurableTask | str, execution_id: str, data: Any = None, timeout: Duration | None = None
) -> Any:
    """``start_child`` then ``wait_for_child``: run ``task`` as a child and return its output."""
    return wait_for_child(start_child(task, execution_id, data), timeout)


def _check_child_id(execution_id: str) -> None:
    check_name(execution_id, "child execution id")
    if len(execution_id) > MAX_CHILD_ID:
        raise PayloadError(
            f"child execution id {execution_id[:40]!r}... is {len(execution_id)} characters long:"
            f" a child's id has at most {MAX_CHILD_ID} (its start is the step"
            f" {START_STEP}<id>, of at most {MAX_LENGTH})"
        )


def _collect_if_ended(ctx: ExecutionContext, execution_id: str) -> None:
    """Check that the parent started ``execution_id``; if it has ended, make sure its end is
    in this run's inbox (a new run of the parent, begun after the child ended, has none)."""
    child = store.load_child(execution_id)
    if child is None:
        raise ExecutionNotFound(execution_id)
    if child.parent_id != ctx.execution_id:
        raise NotAChild(execution_id, ctx.execution_id)
    if child.is_finished:
        store.collect_child_end(ctx.claim, child)


def _output(ctx: ExecutionContext, execution_id: str, end: dict[str, Any]) -> Any:
    """The child's output from its end event, or ``ChildFailed``."""
    if end["status"] != Status.COMPLETED:
        raise ChildFailed(execution_id, end["status"], end["error"])
    task_name = end["task"]
    output_type = ctx.registry.get(task_name).output_type if task_name in ctx.registry else Any
    return decode(end["output"], output_type, f"output of child execution {execution_id!r}")

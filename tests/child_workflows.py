"""Durable tasks with child executions, for tests/test_children.py. Step bodies log to the job's
file (``tests.workflows.record``), so a test counts how often each body ran, across processes."""

from __future__ import annotations

from dataclasses import dataclass, field

from tests.workflows import Job, _body, hold_if_asked, record
from zart_django import (
    ChildFailed,
    PayloadError,
    durable,
    run_child,
    start_child,
    step,
    wait_for_child,
    wait_for_event,
)


@dataclass
class Built:
    name: str
    parts: list[str]


@dataclass
class Child:
    job: Job
    wait: bool = False
    """Wait for the event "finish" between its two steps."""
    fail: bool = False
    """Its second step raises."""


@step("child-first")
def child_first(job: Job) -> str:
    return _body(job, "child-first")


@step("child-second")
def child_second(job: Job, fail: bool) -> str:
    if fail:
        raise ValueError(f"{job.name} cannot build")
    return _body(job, "child-second")


@durable("child-build")
def child_build(child: Child) -> Built:
    """child-first, (wait for "finish"), child-second; returns what it built."""
    a = child_first(child.job)
    if child.wait:
        wait_for_event("finish")
    b = child_second(child.job, child.fail)
    return Built(child.job.name, [a, b])


durable("slow-child", timeout="1m")(child_build.fn)


@dataclass
class Family:
    job: Job
    child: Child
    wait_first: bool = False
    """Wait for the event "go" between starting the child and waiting for it."""
    task: str = "child-build"
    timeout: str | None = None
    """The parent's wait for the child's end."""


@step("parent-after")
def parent_after(job: Job, built: Built) -> str:
    record(job, "start parent-after")
    hold_if_asked(job, "parent-after")
    record(job, "done parent-after")
    return f"used {len(built.parts)} parts"


@durable("parent-of-one")
def parent_of_one(family: Family) -> dict:
    """Starts "<name>-child", (waits for "go"), waits for the child, uses what it built."""
    child_id = start_child(family.task, f"{family.job.name}-child", family.child)
    if family.wait_first:
        wait_for_event("go")
    try:
        built = wait_for_child(child_id, family.timeout)
    except ChildFailed as exc:
        return {"failed": str(exc), "status": exc.status, "child": exc.execution_id}
    return {
        "built": built.parts,
        "typed": type(built).__name__,
        "used": parent_after(family.job, built),
    }


@dataclass
class Nest:
    job: Job
    depth: int
    ids: list[str] = field(default_factory=list)


@durable("nest")
def nest(tree: Nest) -> int:
    """A chain of ``depth`` children (ids "<name>-<depth>", ...); the last waits for "finish"."""
    if tree.depth == 0:
        wait_for_event("finish")
        return 0
    below = Nest(tree.job, tree.depth - 1)
    return 1 + run_child(nest, f"{tree.job.name}-{tree.depth}", below)


@durable("leaves-its-child")
def leaves_its_child(job: Job) -> str:
    """Starts a child that waits for "finish", and ends without waiting for it."""
    return start_child("child-build", f"{job.name}-child", Child(job, wait=True))


@durable("bad-child-id")
def bad_child_id(child_id: str) -> str:
    """Tries to start a child as ``child_id``; returns the refusal."""
    try:
        start_child(child_build, child_id, Child(Job(log="/dev/null")))
    except PayloadError as exc:
        return str(exc)
    return "started"


@durable("waits-for-a-stranger")
def waits_for_a_stranger(other: str) -> str:
    """Waits for an execution it did not start."""
    return str(wait_for_child(other))

"""The durable tasks the benchmarks run, registered through ``ZART["WORKFLOW_MODULES"]``."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from zart_django import durable, parallel, step, wait_for_event


@dataclass
class Request:
    """The input of an approval: who asks for how much."""

    requester: str
    amount: int


@dataclass
class Decision:
    """The payload of the approval event."""

    approved: bool
    reviewer: str


@step("validate")
def validate(request: Request) -> dict[str, object]:
    return {"requester": request.requester, "amount": request.amount, "valid": True}


@step("apply")
def apply(request: Request, decision: Decision) -> str:
    return "applied" if decision.approved else "rejected"


@step("notify")
def notify(request: Request, outcome: str) -> str:
    return f"{request.requester}: {outcome}"


@durable("bench-approval")
def approval(request: Request) -> str:
    """The approval workflow: step, wait for the decision, step, step."""
    validate(request)
    decision = wait_for_event("approval", type=Decision)
    outcome = apply(request, decision)
    return notify(request, outcome)


@step("tick")
def tick(i: int) -> int:
    return i


@durable("bench-chain")
def chain(steps: int) -> int:
    """``steps`` checkpointed steps in a row: the checkpoint rate."""
    for i in range(steps):
        tick(i)
    return steps


@step("woke")
def woke() -> float:
    """The wall-clock time at which the step body ran (the latency probe reads it back)."""
    return time.time()


@durable("bench-latency")
def latency_probe(label: str) -> float:
    """Step, wait for ``go``, then a step that records when it started."""
    tick(0)
    wait_for_event("go")
    return woke()


@durable("bench-resume")
def resume_probe(steps: int) -> int:
    """``steps`` recorded steps, then a wait for ``go``: resuming it replays them all."""
    for i in range(steps):
        tick(i)
    wait_for_event("go")
    return tick(steps)


@step("member")
def member(i: int, pause: float) -> int:
    """A fan-out member: returns ``i`` after ``pause`` seconds (a stand-in for I/O)."""
    if pause:
        time.sleep(pause)
    return i


@durable("bench-fanout")
def fanout(shape: dict[str, float]) -> int:
    """``shape["members"]`` members in one parallel group, ``shape["width"]`` at a time."""
    count, pause, width = int(shape["members"]), shape["pause"], int(shape["width"])
    results = parallel(
        *(functools.partial(member, i, pause) for i in range(count)), max_concurrency=width
    )
    return len(results)


@durable("bench-sequence")
def sequence(shape: dict[str, float]) -> int:
    """The same members one after another: the single-step rate."""
    for i in range(int(shape["members"])):
        member(i, shape["pause"])
    return int(shape["members"])


@durable("bench-single")
def single(i: int) -> int:
    """One member as an execution of its own: what fanning out by separate claims costs."""
    return member(i, 0.0)


@step("io")
def io_call(label: str, i: int, pause: float, ledger: str) -> int:
    """A step that waits ``pause`` seconds as a call to another service would (``time.sleep``),
    then appends ``label i`` and the time to ``ledger``: a body run twice shows there twice."""
    time.sleep(pause)
    with open(ledger, "a") as out:
        out.write(f"{label} {i} {time.time():.6f}\n")
    return i


@durable("bench-io")
def io_bound(shape: dict[str, object]) -> int:
    """``shape["steps"]`` I/O-bound steps in a row (see ``io_call``)."""
    label, pause, ledger = str(shape["label"]), float(shape["pause"]), str(shape["ledger"])
    steps = int(shape["steps"])
    for i in range(steps):
        io_call(label, i, pause, ledger)
    return steps

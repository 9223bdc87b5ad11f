"""The durable tasks the benchmarks run, registered through ``ZART["WORKFLOW_MODULES"]``."""

from __future__ import annotations

import time
from dataclasses import dataclass

from zart_django import durable, step, wait_for_event


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

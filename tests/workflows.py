"""Durable tasks used by the tests. Step bodies log to a file named in the input, so a test can
count how many times each body started and finished, across processes and crashes."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from demo_project.approval.workflows import (
    ApprovalDecision,
    ApprovalOutput,
    ApprovalRequest,
    outcome,
    process_approved,
    validate_request,
)
from zart_django import (
    EventTimeout,
    RetryPolicy,
    StepFailed,
    durable,
    sleep,
    step,
    wait_for_event,
)
from zart_django.approvals import wait_for_approval


@dataclass
class Job:
    log: str
    name: str = "job"
    fail_times: int = 0
    items: list[int] = field(default_factory=list)


@dataclass
class Approval:
    approved: bool
    reviewer: str


def record(job: Job, line: str) -> None:
    """Append one line to the job's log, durably, from any process."""
    fd = os.open(job.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{job.name} {line}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def lines(path: str | Path) -> list[str]:
    """The lines of a job log (empty if nothing ran yet)."""
    p = Path(path)
    return p.read_text().splitlines() if p.exists() else []


def hold_if_asked(job: Job, step_name: str) -> None:
    """Block while the file ``<log>.hold-<step>`` exists, so a test can kill a worker mid-step."""
    hold = Path(f"{job.log}.hold-{step_name}")
    limit = time.monotonic() + 60
    while hold.exists() and time.monotonic() < limit:
        time.sleep(0.02)


def _body(job: Job, step_name: str) -> str:
    hold_if_asked(job, f"before-{step_name}")
    record(job, f"start {step_name}")
    hold_if_asked(job, step_name)
    record(job, f"done {step_name}")
    return f"{step_name} ok"


@step("first")
def first(job: Job) -> str:
    return _body(job, "first")


@step("second")
def second(job: Job) -> str:
    return _body(job, "second")


@step("third")
def third(job: Job, approval: Approval) -> str:
    return _body(job, "third") + f" by {approval.reviewer}"


@durable("three-steps", events={"go": Approval})
def three_steps(job: Job) -> dict:
    """first, second, wait for "go" (an Approval, as the task declares), third."""
    a = first(job)
    b = second(job)
    approval = wait_for_event("go")
    c = third(job, approval)
    return {"results": [a, b, c], "approved": approval.approved}


@durable("reference-approval", timeout="5m")
def reference_approval(data: ApprovalRequest) -> ApprovalOutput:
    """The reference page's workflow on the core alone: a plain event carries the decision, so
    ``offer_event`` delivers it (``wait_for_approval`` would take it from ``decide`` only)."""
    validate_request(data)
    decision = wait_for_event("manager-approval", timeout="120s", type=ApprovalDecision)
    if decision.approved:
        process_approved(data.resource, data.requester_name)
    return outcome(data, decision)


@dataclass
class Quick:
    seconds: float


@durable("quick-approval")
def quick_approval(data: Quick) -> str:
    """An approval that expires after ``data.seconds``: for races between decisions and expiry."""
    try:
        decision = wait_for_approval("ok", timeout=timedelta(seconds=data.seconds))
    except EventTimeout:
        return "expired"
    return "approved" if decision.approved else "rejected"


@durable("two-levels")
def two_levels(data: Quick) -> str:
    """A manager, then a director: multi-level approval as plain code."""
    first = wait_for_approval("manager")
    second = wait_for_approval("director") if first.approved else first
    return f"{first.reviewer} then {second.reviewer}: {second.approved}"


@dataclass
class Reminded:
    timeout: str | None = None
    remind_every: str | None = None
    escalate_after: str | None = None
    escalate_to: list[str] = field(default_factory=list)


@durable("reminded-approval")
def reminded_approval(data: Reminded) -> str:
    """An approval with reminders and escalation, as ``data`` sets them."""
    try:
        decision = wait_for_approval(
            "ok",
            timeout=data.timeout,
            title="Deploy <prod> & more",
            remind_every=data.remind_every,
            escalate_after=data.escalate_after,
            escalate_to=data.escalate_to,
        )
    except EventTimeout:
        return "expired"
    return "approved" if decision.approved else "rejected"


def attempt(job: Job, step_name: str) -> int:
    """Log the start of an attempt of ``step_name``'s body and return its number (1, 2, ...)."""
    record(job, f"start {step_name}")
    return sum(1 for line in lines(job.log) if line == f"{job.name} start {step_name}")


@step("flaky", retry=RetryPolicy.fixed(3, "1s"))
def flaky(job: Job) -> str:
    attempt_number = attempt(job, "flaky")
    if attempt_number <= job.fail_times:
        raise ConnectionError(f"attempt {attempt_number} failed")
    return f"succeeded on attempt {attempt_number}"


@durable("retrying")
def retrying(job: Job) -> str:
    try:
        return flaky(job)
    except StepFailed as exc:
        return f"gave up: {exc}"


@step("no-retry")
def no_retry(job: Job) -> str:
    record(job, "start no-retry")
    raise ValueError("bad input")


@durable("failing")
def failing(job: Job) -> str:
    return no_retry(job)


@step("square")
def square(job: Job, n: int) -> int:
    record(job, f"square {n}")
    return n * n


@durable("loop")
def loop(job: Job) -> list[int]:
    return [square(job, n) for n in job.items]


@durable("waits-with-timeout")
def waits_with_timeout(job: Job) -> str:
    first(job)
    try:
        approval = wait_for_event("go", timeout="120s", type=Approval)
    except EventTimeout:
        second(job)
        return "timed out"
    return f"approved={approval.approved}"


@durable("waits-then-sleeps")
def waits_then_sleeps(job: Job) -> str:
    """A wait with a timeout whose execution lives on after it times out."""
    try:
        wait_for_event("go", timeout="120s", type=Approval)
    except EventTimeout:
        sleep("after", "1h")
        return "timed out"
    return "received"


@durable("sleeper")
def sleeper(job: Job) -> str:
    first(job)
    sleep("nap", "1h")
    second(job)
    return "rested"


@durable("swallower", timeout="1h")
def swallower(job: Job) -> str:
    """Catches everything it can; parking must still work."""
    try:
        wait_for_event("go", type=Approval)
    except Exception:
        return "swallowed the wait"
    return "woke"


@durable("no-input")
def no_input() -> str:
    return "done"


CODE_VERSION = {"v": 1}


@step("renamed-v1")
def renamed_v1(job: Job) -> str:
    return "v1"


@step("renamed-v2")
def renamed_v2(job: Job) -> str:
    return "v2"


@durable("changing")
def changing(job: Job) -> str:
    """Its first step changes name between "deploys" (CODE_VERSION)."""
    result = renamed_v1(job) if CODE_VERSION["v"] == 1 else renamed_v2(job)
    wait_for_event("go")
    return result


SWALLOWED: list[Exception] = []


@durable("changing-swallows")
def changing_swallows(job: Job) -> str:
    """Like "changing", but catches what replay raises at the changed step (kept in SWALLOWED)."""
    try:
        result = renamed_v1(job) if CODE_VERSION["v"] == 1 else renamed_v2(job)
    except Exception as exc:
        SWALLOWED.append(exc)
        return "swallowed"
    wait_for_event("go")
    return result


@step("fatal")
def fatal(job: Job) -> str:
    record(job, "start fatal")
    os.kill(os.getpid(), signal.SIGKILL)  # only ever run by worker processes
    return "unreachable"


@durable("kills-its-worker")
def kills_its_worker(job: Job) -> str:
    """first, then a step whose body SIGKILLs the process running it, every time."""
    first(job)
    return fatal(job)


@durable("slow-task", timeout="30s")
def slow_task(job: Job) -> str:
    first(job)
    wait_for_event("go")
    return "never"


@step("once-only", retry=RetryPolicy.fixed(1, "1s"))
def once_only(job: Job) -> str:
    record(job, "start once-only")
    raise RuntimeError("no luck")


@durable("one-attempt")
def one_attempt(job: Job) -> str:
    return once_only(job)


@step("outer")
def outer(job: Job) -> int:
    return square(job, 3) + 1  # a step called inside a step runs as a plain function


@step("waits-inside")
def waits_inside(job: Job) -> str:
    return wait_for_event("go")


@durable("nested")
def nested(job: Job) -> str:
    total = outer(job)
    try:
        waits_inside(job)
    except StepFailed as exc:
        return f"{total}: {exc.error}"
    return "unreachable"


@step("fragile")
def fragile(job: Job) -> str:
    attempt_number = attempt(job, "fragile")
    if attempt_number <= job.fail_times:
        raise ValueError(f"fragile failed on attempt {attempt_number}")
    return f"fragile ok on attempt {attempt_number}"


@durable("breaks", timeout="1h")
def breaks(job: Job) -> list[str]:
    """first, then a step that fails its first ``fail_times`` attempts (no retry policy), second."""
    return [first(job), fragile(job), second(job)]


@durable("counted-approval")
def counted_approval(job: Job) -> str:
    """first, an approval "sign-off", then second if approved: each body counted in the log."""
    first(job)
    decision = wait_for_approval("sign-off")
    if decision.approved:
        second(job)
    return f"{'approved' if decision.approved else 'rejected'} by {decision.reviewer}"

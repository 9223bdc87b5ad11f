"""Signals: each sent once its change commits, with what a receiver needs; a receiver that raises
is logged and cannot break the engine or the caller. The engine runs in this process
(``run_until_idle``), so the test's receivers hear what a worker's would."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from demo_project.approval.workflows import approval_task
from tests.approval_helpers import REQUEST
from tests.workflows import Approval, Job
from zart_django import signals
from zart_django.approvals import decide
from zart_django.approvals import signals as approval_signals
from zart_django.models import Execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db(transaction=True)

ALL = (
    "execution_started",
    "execution_finished",
    "execution_blocked",
    "step_failed",
    "approval_requested",
    "approval_decided",
)


def signal_of(name: str) -> Any:
    """The engine's signal ``name``, or the approvals' (``zart_django.approvals.signals``)."""
    return getattr(signals, name, None) or getattr(approval_signals, name)


@pytest.fixture
def heard() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every signal sent during the test, as (name, arguments without the signal itself)."""
    received: list[tuple[str, dict[str, Any]]] = []
    receivers = {}
    for name in ALL:

        def receiver(sender: Any, name: str = name, **kwargs: Any) -> None:
            assert sender is Execution
            kwargs.pop("signal")
            received.append((name, kwargs))

        receivers[name] = receiver
        signal_of(name).connect(receiver)
    yield received
    for name, receiver in receivers.items():
        signal_of(name).disconnect(receiver)


def names(heard: list[tuple[str, dict[str, Any]]], execution_id: str) -> list[str]:
    return [name for name, args in heard if args["execution_id"] == execution_id]


def test_an_execution_sends_started_once_then_finished_with_its_output(scheduler, job, heard):
    scheduler.start("s-1", "three-steps", job)
    scheduler.start("s-1", "three-steps", job)  # idempotent: no second "started"
    run_until_idle()
    scheduler.offer_event("s-1", "go", Approval(True, "Sam"))
    run_until_idle()
    assert names(heard, "s-1") == ["execution_started", "execution_finished"]
    started, finished = (args for _, args in heard)
    assert started == {"execution_id": "s-1", "task_name": "three-steps", "input": started["input"]}
    assert started["input"]["name"] == job.name
    assert finished["status"] == "completed"
    assert finished["output"]["results"][2] == "third ok by Sam"
    assert finished["error"] == ""


def test_a_repeated_start_in_the_same_clock_tick_sends_no_second_started(
    scheduler, job, heard, monkeypatch
):
    """Issue 9: "created" was judged by comparing the stored created_at with the time written,
    so on a coarse clock (two starts in one tick) the repeated start was taken for a new one."""
    tick = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: tick)
    first = scheduler.start("tick-1", "three-steps", job)
    again = scheduler.start("tick-1", "three-steps", job)
    assert (first.created, again.created) == (True, False)
    assert names(heard, "tick-1") == ["execution_started"]


def test_a_failing_step_sends_step_failed_per_attempt_then_the_failure(scheduler, tmp_path, heard):
    scheduler.start("s-2", "retrying", Job(log=str(tmp_path / "log"), fail_times=5))
    for _ in range(3):
        run_until_idle()
        advance_time("1s")
    failures = [args for name, args in heard if name == "step_failed"]
    assert [(f["step"], f["attempt"], f["will_retry"]) for f in failures] == [
        ("flaky", 1, True),
        ("flaky", 2, True),
        ("flaky", 3, False),
    ]
    assert failures[0]["error"] == "ConnectionError: attempt 1 failed"
    assert heard[-1][0] == "execution_finished"
    assert heard[-1][1]["status"] == "completed"  # the function caught StepFailed

    scheduler.start("s-3", "failing", Job(log=str(tmp_path / "log3")))
    run_until_idle()
    name, finished = heard[-1]
    assert (name, finished["status"], finished["output"]) == ("execution_finished", "failed", None)
    assert "ValueError: bad input" in finished["error"]


def test_cancel_sends_finished_with_status_cancelled(scheduler, job, heard):
    scheduler.start("s-4", "three-steps", job)
    run_until_idle()
    scheduler.cancel("s-4")
    name, finished = heard[-1]
    assert (name, finished["status"], finished["task_name"]) == (
        "execution_finished",
        "cancelled",
        "three-steps",
    )


def test_an_approval_sends_requested_once_and_decided(scheduler, manager, heard):
    scheduler.start_for(approval_task, "s-5", REQUEST)
    run_until_idle()
    run_until_idle()  # nothing due: a replay sends nothing again
    decide("s-5", manager, approved=False, comment="not now", source="api")
    run_until_idle()
    assert names(heard, "s-5") == [
        "execution_started",
        "approval_requested",
        "approval_decided",
        "execution_finished",
    ]
    requested, decided = heard[1][1], heard[2][1]
    assert requested["event"] == "manager-approval"
    assert requested["permission"] == "zart_approvals.decide_approval"
    assert requested["task_name"] == "approval-task"
    assert {k: decided[k] for k in ("approved", "reviewer", "comment", "source")} == {
        "approved": False,
        "reviewer": "alice",
        "comment": "not now",
        "source": "api",
    }


def test_nothing_is_sent_for_a_change_that_rolled_back(scheduler, job, heard):
    with pytest.raises(RuntimeError), transaction.atomic():
        scheduler.start("s-6", "three-steps", job)
        assert heard == []  # not before the commit either
        raise RuntimeError("the caller's transaction fails")
    assert not Execution.objects.filter(pk="s-6").exists()
    assert heard == []


def test_send_blocked_sends_execution_blocked_after_commit(heard):
    with transaction.atomic():
        signals.send_blocked("s-7", "step 'a' differs", task_name="t")
        assert heard == []
    assert heard == [
        (
            "execution_blocked",
            {"execution_id": "s-7", "task_name": "t", "error": "step 'a' differs"},
        )
    ]


def test_a_receiver_that_raises_is_logged_and_breaks_nothing(scheduler, job, caplog, heard):
    def broken(**kwargs: Any) -> None:
        raise ConnectionRefusedError("the chat tool is down")

    signals.execution_started.connect(broken)
    signals.execution_finished.connect(broken)
    caplog.set_level(logging.INFO, logger="zart_django")
    try:
        scheduler.start("s-8", "no-input")
        run_until_idle()
    finally:
        signals.execution_started.disconnect(broken)
        signals.execution_finished.disconnect(broken)
    assert scheduler.get("s-8").status == "completed"
    assert names(heard, "s-8") == ["execution_started", "execution_finished"]  # others still hear
    errors = [r for r in caplog.records if r.name == "zart_django" and r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        f"execution s-8: signal receiver {broken.__qualname__} raised"
        " ConnectionRefusedError: the chat tool is down"
    ] * 2


def test_each_state_change_logs_one_line_with_the_execution_id(
    scheduler, manager, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="zart_django")
    manager.email = "alice@example.com"  # else the opened request's mail logs her as skipped
    manager.save()
    scheduler.start_for(approval_task, "l-1", REQUEST)
    run_until_idle()
    decide("l-1", manager, approved=True, comment="ok")
    run_until_idle()
    scheduler.start("l-2", "failing", Job(log=str(tmp_path / "log")))
    run_until_idle()
    scheduler.start("l-3", "three-steps", Job(log=str(tmp_path / "log")))
    scheduler.cancel("l-3")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "zart_django"]
    assert lines == [
        ("INFO", "execution l-1: started (task approval-task)"),
        (
            "INFO",
            "execution l-1: approval manager-approval requested (permission"
            " zart_approvals.decide_approval)",
        ),
        ("INFO", "execution l-1: waiting for event approval:manager-approval"),
        ("INFO", "execution l-1: event approval:manager-approval received, resuming"),
        ("INFO", "execution l-1: approval manager-approval approved by alice"),
        ("INFO", "execution l-1: completed"),
        ("INFO", "execution l-2: started (task failing)"),
        (
            "WARNING",
            "execution l-2: step no-retry failed (attempt 1, no retry left): ValueError: bad input",
        ),
        (
            "ERROR",
            "execution l-2: failed: StepFailed: step 'no-retry' failed after 1 attempt:"
            " ValueError: bad input",
        ),
        ("INFO", "execution l-3: started (task three-steps)"),
        ("INFO", "execution l-3: cancelled"),
    ]

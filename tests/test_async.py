"""``async def`` durable functions and steps run in-process (``zart_django.testing``, which runs
their event loop on a helper thread and their engine calls in the test's): steps awaited,
retries, step timeouts, what may call what, parallel, values, children, compensation, database
errors, a lost lease, cancellation, 1,000 parked executions, and the scheduler's async twins."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.db import OperationalError

from tests import async_workflows
from tests.conftest import wait_until
from tests.workflows import Approval, Job, first, lines, second
from zart_django import (
    DurableScheduler,
    DurableTask,
    ExecutionFailed,
    ExecutionFinished,
    StepTimeout,
    TaskRegistry,
    default_registry,
    durable,
    step,
    store,
    wait_for_event,
)
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRequest
from zart_django.models import Execution, StepResult
from zart_django.replay import run_execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]


def count(job: Job, line: str) -> int:
    return lines(job.log).count(f"{job.name} {line}")


def rows(execution_id: str) -> list[tuple[str, str, int]]:
    steps = StepResult.objects.filter(execution_id=execution_id).order_by("position")
    return [(s.name, s.status, s.attempts) for s in steps]


def run_through_retries(rounds: int) -> None:
    """Run what is due, then skip past the retry delay (1 s), ``rounds`` times."""
    for _ in range(rounds):
        run_until_idle()
        advance_time("2s")


def output_after_retries(task: DurableTask, execution_id: str, job: Job, rounds: int) -> Any:
    """Start ``task`` on ``job``, run it through ``rounds`` retry delays, return its output."""
    scheduler = DurableScheduler()
    scheduler.start_for(task, execution_id, job)
    run_through_retries(rounds)
    return scheduler.wait_completion(execution_id, timeout=5)


def test_an_async_function_awaits_async_and_plain_steps_and_an_event(scheduler, job):
    scheduler.start_for(async_workflows.async_three_steps, "as-1", job)
    run_until_idle()
    assert Execution.objects.get(pk="as-1").waiting_on == "go"
    scheduler.offer_event("as-1", "go", Approval(True, "Ada"))
    run_until_idle()
    output = scheduler.wait_completion("as-1", timeout=5)
    assert output == {
        "results": ["a-first ok", "a-second ok", "a-plain ok by Ada"],
        "approved": True,
    }
    assert [count(job, f"done {s}") for s in ("a-first", "a-second", "a-plain")] == [1, 1, 1]
    assert rows("as-1") == [
        ("a-first", "completed", 1),
        ("a-second", "completed", 1),
        ("go", "completed", 1),
        ("a-plain", "completed", 1),
    ]


def test_a_failing_async_step_is_retried_then_succeeds(scheduler, job):
    job.fail_times = 2
    output = output_after_retries(async_workflows.async_retrying, "as-retry", job, 3)
    assert output == "succeeded on attempt 3"
    assert rows("as-retry") == [("a-flaky", "completed", 3)]


def test_an_async_step_out_of_attempts_raises_step_failed(scheduler, job):
    job.fail_times = 5
    output = output_after_retries(async_workflows.async_retrying, "as-fail", job, 4)
    assert (
        output
        == "gave up: step 'a-flaky' failed after 3 attempts: ConnectionError: attempt 3 failed"
    )
    assert count(job, "start a-flaky") == 3


def test_an_attempt_past_its_timeout_is_cancelled_and_counted(scheduler, job):
    job.fail_times = 1
    scheduler.start_for(async_workflows.async_slow, "as-slow", job)
    run_until_idle()
    assert count(job, "cancelled a-slow 1") == 1
    (row,) = StepResult.objects.filter(execution_id="as-slow")
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.error == (
        "StepTimeout: attempt 1 of step 'a-slow' ran past its timeout (0:00:00.200000) and was"
        " cancelled"
    )
    advance_time("2s")
    run_until_idle()
    assert scheduler.wait_completion("as-slow", timeout=5) == "in time on attempt 2"


def test_attempts_that_all_time_out_end_in_step_failed(scheduler, job):
    job.fail_times = 3
    output = output_after_retries(async_workflows.async_slow, "as-slow-3", job, 4)
    assert output.startswith("gave up: step 'a-slow' failed after 3 attempts: StepTimeout:")
    assert [count(job, f"cancelled a-slow {n}") for n in (1, 2, 3)] == [1, 1, 1]


def test_a_plain_step_with_a_timeout_is_refused_when_it_is_declared():
    with pytest.raises(TypeError, match="timeout= applies to async def steps only"):

        @step("plain-with-timeout", timeout="1s")
        def plain(n: int) -> int:
            return n


@pytest.mark.parametrize("timeout", [0, -1, "0s"])
def test_a_step_timeout_that_is_not_positive_is_refused(timeout):
    with pytest.raises(ValueError, match="timeout must be positive"):
        step("never", timeout=timeout)


def test_step_timeout_is_a_timeout_error():
    assert issubclass(StepTimeout, TimeoutError)


def test_a_plain_function_calling_an_async_step_fails_clearly(scheduler, job):
    scheduler.start_for(async_workflows.sync_calls_async_step, "as-mixed", job)
    run_until_idle()
    with pytest.raises(ExecutionFailed, match="only an async def durable function can await it"):
        scheduler.wait_completion("as-mixed", timeout=5)
    assert count(job, "start a-first") == 0


def test_steps_awaited_at_once_are_refused(scheduler, job):
    scheduler.start_for(async_workflows.async_gathers, "as-gather", job)
    run_until_idle()
    with pytest.raises(ExecutionFailed, match="awaits one step or wait at a time"):
        scheduler.wait_completion("as-gather", timeout=5)


def test_parallel_runs_async_and_plain_members_and_replays_none_twice(scheduler, job):
    job.items = [0, 1, 2, 3, 4, 5]
    scheduler.start_for(async_workflows.async_fan_out, "as-fan", job)
    run_until_idle()
    assert scheduler.wait_completion("as-fan", timeout=5) == [0, 10, 20, 30, 40, 50, 9, 4]
    assert [count(job, f"done a-price {n}") for n in job.items] == [1] * 6
    names = [name for name, _, _ in rows("as-fan")]
    assert names == ["a-price", *(f"a-price#{n}" for n in range(2, 7)), "square", "square#2"]


def test_recorded_values_are_awaited_and_replayed(scheduler, job):
    scheduler.start_for(async_workflows.async_values, "as-values", job)
    run_until_idle()
    first = scheduler.wait_completion("as-values", timeout=5)
    assert first["patched"] is True and first["captured"] == 1
    execution = Execution.objects.get(pk="as-values")
    Execution.objects.filter(pk="as-values").update(
        status="pending", output=None, scheduled_at=execution.created_at, finished_at=None
    )
    run_until_idle()
    assert scheduler.wait_completion("as-values", timeout=5) == first
    assert count(job, "start capture") == 1


def test_an_async_parent_runs_plain_and_async_children(scheduler, job):
    job.name = "kin"
    scheduler.start_for(async_workflows.async_parent, "as-parent", job)
    run_until_idle()
    assert scheduler.wait_completion("as-parent", timeout=5) == [49, len("a-first ok")]
    assert scheduler.get("kin-async").parent == "as-parent"


def test_an_async_sleep_and_wait_for_any(scheduler, job):
    scheduler.start_for(async_workflows.async_sleeps_and_waits, "as-sleep", job)
    run_until_idle()
    assert Execution.objects.get(pk="as-sleep").waiting_on == "sleep:nap"
    advance_time("11s")
    run_until_idle()
    scheduler.offer_event("as-sleep", "right", "R")
    run_until_idle()
    assert scheduler.wait_completion("as-sleep", timeout=5) == "right: R"


def test_an_async_compensation_handler_runs_its_steps(scheduler, job):
    scheduler.start_for(async_workflows.async_compensated, "as-comp", job)
    run_until_idle()
    info = scheduler.get("as-comp")
    assert info.status == "failed"
    assert info.compensation.status == "completed"
    assert info.compensation.result == "undone after a-breaks"
    assert count(job, "undo") == 1


def test_a_plain_function_may_have_an_async_compensation_handler(scheduler, job):
    scheduler.start_for(async_workflows.plain_compensated_async, "as-plain-comp", job)
    run_until_idle()
    info = scheduler.get("as-plain-comp")
    assert (info.status, info.compensation.result) == ("failed", "undone after plain-breaks")


def test_a_parked_async_execution_can_be_cancelled(scheduler, job):
    scheduler.start_for(async_workflows.async_three_steps, "as-cancel", job)
    run_until_idle()
    scheduler.cancel("as-cancel")
    with pytest.raises(ExecutionFinished):
        scheduler.offer_event("as-cancel", "go", Approval(True, "Late"))
    assert run_until_idle() == 0
    assert Execution.objects.get(pk="as-cancel").status == "cancelled"
    assert count(job, "start a-plain") == 0


@pytest.mark.django_db(transaction=True)
def test_a_database_error_mid_async_function_hands_it_back(scheduler, job, monkeypatch, settings):
    """The inbox read of the wait fails: the run is handed back (pending, not failed), and the
    next run answers the finished steps from their checkpoints."""
    settings.ZART = {**settings.ZART, "POLL_INTERVAL": 0}
    real = store.event_payload
    failures = iter([OperationalError("server closed the connection unexpectedly")])

    def flaky_inbox(*args, **kwargs):
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "event_payload", flaky_inbox)
    scheduler.start_for(async_workflows.async_three_steps, "as-db", job)
    claim = store.claim_due("test", 1, 30, tasks=["async-three-steps"])[0]
    assert run_execution(claim, default_registry) == "handed back"
    execution = Execution.objects.get(pk="as-db")
    assert (execution.status, execution.error) == ("pending", "")
    run_until_idle()
    assert Execution.objects.get(pk="as-db").status == "waiting"
    assert [count(job, f"done {s}") for s in ("a-first", "a-second")] == [1, 1]


@contextlib.contextmanager
def inside_the_second_step(job: Job, execution_id: str) -> Iterator[list[str]]:
    """Run ``async-three-steps`` on a thread of its own; the block runs while its second step's
    body is held; yield the list that receives how the run ended once the block let it go."""
    gate = Path(f"{job.log}.hold-a-second")
    gate.touch()
    DurableScheduler().start_for(async_workflows.async_three_steps, execution_id, job)
    (claim,) = store.claim_due("owner", 1, 30, tasks=["async-three-steps"])
    ended: list[str] = []
    runner = threading.Thread(target=lambda: ended.append(run_execution(claim, default_registry)))
    runner.start()
    wait_until(lambda: count(job, "start a-second") == 1, what="the second step to start")
    try:
        yield ended
    finally:
        gate.unlink()
        runner.join(timeout=30)


@pytest.mark.django_db(transaction=True)
def test_a_lease_lost_mid_async_step_writes_nothing(scheduler, job):
    """Another owner takes the execution while an async step's body runs: the checkpoint is
    refused, the run lets go, and the new owner's state stands."""
    with inside_the_second_step(job, "as-lease") as ended:
        Execution.objects.filter(pk="as-lease").update(lease_token="someone-else")
    assert ended == ["lease lost"]
    assert count(job, "done a-second") == 1
    assert rows("as-lease") == [("a-first", "completed", 1)]


def test_an_async_step_body_may_use_the_async_orm(scheduler):
    scheduler.start_for(async_workflows.async_orm, "as-orm", "as-orm")
    run_until_idle()
    assert scheduler.wait_completion("as-orm", timeout=5) == "async-orm"


def test_an_async_function_past_its_timeout_times_out(scheduler, job):
    scheduler.start_for(async_workflows.async_timeout, "as-late", job)
    run_until_idle()
    advance_time("3m")
    run_until_idle()
    with pytest.raises(ExecutionFailed, match="timed_out"):
        scheduler.wait_completion("as-late", timeout=5)
    assert (count(job, "done a-first"), count(job, "start a-second")) == (1, 0)


@pytest.mark.django_db(transaction=True)
def test_cancelled_while_an_async_step_runs_it_goes_no_further(scheduler, job):
    with inside_the_second_step(job, "as-stop") as ended:
        scheduler.cancel("as-stop")
    assert ended == ["lease lost"]
    assert Execution.objects.get(pk="as-stop").status == "cancelled"
    assert rows("as-stop") == [("a-first", "completed", 1)]


def test_an_async_function_awaits_an_approval(scheduler, job, manager):
    scheduler.start_for(async_workflows.async_approval, "as-approve", job)
    run_until_idle()
    assert ApprovalRequest.objects.get(execution_id="as-approve").title == "Async deploy"
    decide("as-approve", manager, approved=True)
    run_until_idle()
    assert scheduler.wait_completion("as-approve", timeout=5) == "Alice Manager: True, a-first ok"


def test_an_async_step_body_awaits_another_async_step_as_a_plain_call(scheduler, job):
    scheduler.start_for(async_workflows.async_nested, "as-nested", job)
    run_until_idle()
    assert scheduler.wait_completion("as-nested", timeout=5) == "outer of a-first ok"
    assert rows("as-nested") == [("a-outer", "completed", 1)]


def test_an_async_member_past_its_timeout_is_retried_alone(scheduler, job):
    job.fail_times = 1
    output = output_after_retries(async_workflows.async_slow_group, "as-slow-group", job, 2)
    assert output == ["in time on attempt 2", "a-second ok"]
    assert (count(job, "cancelled a-slow 1"), count(job, "done a-second")) == (1, 1)
    assert rows("as-slow-group") == [("a-slow", "completed", 2), ("a-second", "completed", 1)]


def test_a_thousand_parked_async_executions_resume(scheduler):
    ids = [f"as-many-{n}" for n in range(1000)]
    for n, execution_id in enumerate(ids):
        scheduler.start_for(async_workflows.async_parked, execution_id, n)
    run_until_idle()
    assert Execution.objects.filter(pk__in=ids, status="waiting").count() == 1000
    for execution_id in ids:
        scheduler.offer_event(execution_id, "go", 1)
    run_until_idle()
    outputs = Execution.objects.filter(pk__in=ids, status="completed").values_list("output")
    assert sorted(output for (output,) in outputs) == list(range(1, 1001))


def test_the_scheduler_async_twins_from_an_async_view(scheduler, job):
    """As an ASGI view would: start, offer and wait with the async twins (asgiref runs the
    test's coroutine on an event loop and the queries in this thread)."""

    async def view() -> dict:
        info = await scheduler.astart_for(async_workflows.async_three_steps, "as-view", job)
        assert info.created
        await sync_to_async(run_until_idle)()
        await scheduler.aoffer_event("as-view", "go", Approval(False, "Bo"))
        await sync_to_async(run_until_idle)()
        return await scheduler.await_completion("as-view", timeout=5)

    assert async_to_sync(view)()["approved"] is False


def test_await_completion_raises_what_wait_completion_raises(scheduler, job):
    scheduler.start_for(async_workflows.async_three_steps, "as-wait", job)
    with pytest.raises(Exception, match="had not finished"):
        async_to_sync(scheduler.await_completion)("as-wait", timeout=0.1)


def test_a_deploy_that_makes_a_parked_function_async_resumes_it_running_no_step_again(job):
    before, after = TaskRegistry(), TaskRegistry()

    @durable("converted", registry=before)
    def plain(job: Job) -> list[str]:
        done = first(job)
        wait_for_event("go")
        return [done, second(job)]

    @durable("converted", registry=after)
    async def converted(job: Job) -> list[str]:
        done = await first(job)
        await wait_for_event("go")
        return [done, await second(job)]

    DurableScheduler(before).start("converted-1", "converted", job)
    run_until_idle(before)
    assert Execution.objects.get(pk="converted-1").status == "waiting"
    scheduler = DurableScheduler(after)  # the deploy: the same task, now async def
    scheduler.offer_event("converted-1", "go")
    run_until_idle(after)
    assert scheduler.wait_completion("converted-1", timeout=5) == ["first ok", "second ok"]
    assert [count(job, "start first"), count(job, "start second")] == [1, 1]

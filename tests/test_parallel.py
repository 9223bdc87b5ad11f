"""Parallel steps (``zart_django.parallel``) run in-process with ``zart_django.testing``: results
in call order, keys in call order, retries and failures after the others settle, a replay that
runs only unfinished members, 1,000 members with bounded threads and queries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tests import parallel_workflows
from tests.conftest import wait_until
from tests.queries import step_writes
from tests.workflows import Job, lines
from zart_django import DurableScheduler, ExecutionFailed, conf, runs, store
from zart_django.errors import LeaseLost
from zart_django.models import Execution, StepResult
from zart_django.testing import advance_time, run_until_idle

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(120)]


def rows(execution_id: str) -> list[tuple[int, str, str, int]]:
    steps = StepResult.objects.filter(execution_id=execution_id).order_by("position")
    return [(s.position, s.name, s.status, s.attempts) for s in steps]


def due_again(execution_id: str) -> None:
    """Make a finished execution due again, as if it had never finished: it replays."""
    execution = Execution.objects.get(pk=execution_id)
    Execution.objects.filter(pk=execution_id).update(
        status="pending", output=None, scheduled_at=execution.created_at, finished_at=None
    )


def count(job: Job, line: str) -> int:
    return lines(job.log).count(f"{job.name} {line}")


def test_results_come_back_in_call_order_when_members_finish_in_reverse(scheduler, tmp_path):
    job = Job(log=str(tmp_path / "log"), name="reverse", items=[0, 1, 2, 3, 4])
    scheduler.start("p-1", "fan-out", job)
    run_until_idle()
    assert scheduler.wait_completion("p-1", timeout=1) == [0, 10, 20, 30, 40, 4]
    done = [line for line in lines(job.log) if " done price " in line]
    assert done == [f"reverse done price {n}" for n in (4, 3, 2, 1, 0)]
    names = ["price", "price#2", "price#3", "price#4", "price#5", "square"]
    assert rows("p-1") == [(i, name, "completed", 1) for i, name in enumerate(names)]


def test_a_replay_runs_no_finished_member_again(scheduler, job):
    job.items = [1, 2, 3]
    scheduler.start("p-2", "fan-out", job)
    run_until_idle()
    for _ in range(2):  # spurious wake-ups replay the function from the top
        due_again("p-2")
        run_until_idle()
    assert scheduler.wait_completion("p-2", timeout=1) == [10, 20, 30, 4]
    assert [count(job, f"start price {n}") for n in (1, 2, 3)] == [1, 1, 1]


def test_only_members_without_a_checkpoint_run_when_the_group_is_replayed(scheduler, job):
    """What a crash mid-group leaves (some members recorded, the others not) replays so."""
    job.items = [0, 1, 2, 3]
    scheduler.start("p-3", "fan-out", job)
    run_until_idle()
    StepResult.objects.filter(execution_id="p-3", position__in=[1, 3, 4]).delete()
    due_again("p-3")
    run_until_idle()
    assert scheduler.wait_completion("p-3", timeout=1) == [0, 10, 20, 30, 4]
    assert [count(job, f"start price {n}") for n in range(4)] == [1, 2, 1, 2]
    assert [name for _, name, _, _ in rows("p-3")] == [
        "price",
        "price#2",
        "price#3",
        "price#4",
        "square",
    ]


def test_a_failing_member_retries_then_raises_step_failed_after_the_others(scheduler, job):
    job.fail_times = 5
    scheduler.start("p-4", "fan-out-shaky", job)
    run_until_idle()
    assert rows("p-4") == [
        (0, "price", "completed", 1),
        (1, "shaky", "retrying", 1),
        (2, "price#2", "completed", 1),
    ]
    assert Execution.objects.get(pk="p-4").status == "pending"  # due when the retry is
    advance_time("2s")
    run_until_idle()
    output = scheduler.wait_completion("p-4", timeout=1)
    assert output == ("shaky failed after 2 attempts: ConnectionError: shaky 2 failed on attempt 2")
    assert rows("p-4")[1] == (1, "shaky", "failed", 2)
    assert count(job, "start shaky 2") == 2
    assert [count(job, f"start price {n}") for n in (1, 3)] == [1, 1]


def test_a_member_that_recovers_on_its_retry_gives_its_result(scheduler, job):
    job.fail_times = 1
    scheduler.start("p-5", "fan-out-shaky", job)
    run_until_idle()
    advance_time("2s")
    run_until_idle()
    assert scheduler.wait_completion("p-5", timeout=1) == "results [10, 2, 30]"
    assert [count(job, f"start price {n}") for n in (1, 3)] == [1, 1]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("no-step", "returned without calling a step"),
        ("not-callable", "is not callable"),
        ("zero", "max_concurrency must be at least 1"),
    ],
)
def test_members_that_are_not_one_step_are_refused_clearly(scheduler, kind, message):
    scheduler.start(f"p-bad-{kind}", "fan-out-misused", kind)
    run_until_idle()
    with pytest.raises(ExecutionFailed, match=message):
        scheduler.wait_completion(f"p-bad-{kind}", timeout=1)


def test_an_empty_group_returns_an_empty_list(scheduler, job):
    scheduler.start("p-empty", "fan-out-empty", job)
    run_until_idle()
    assert scheduler.wait_completion("p-empty", timeout=1) == []


RUN_QUERIES = 10
"""Queries of one run that are not a member's: the claim, loading the steps, the finish, ..."""


def fan_out_queries(scheduler: DurableScheduler, count: int) -> int:
    """The queries of running a group of ``count`` no-op members to completion."""
    scheduler.start(f"p-n-{count}", "fan-out-noop", count)
    with CaptureQueriesContext(connection) as queries:
        run_until_idle()
    assert scheduler.wait_completion(f"p-n-{count}", timeout=1) == list(range(count))
    assert len(step_writes(queries)) <= count
    return len(queries)


def test_a_thousand_members_complete_with_bounded_threads_and_queries(scheduler):
    parallel_workflows.THREADS_SEEN.clear()
    small = fan_out_queries(scheduler, 100)
    large = fan_out_queries(scheduler, 1000)
    # At most one query per member (members that finish together share one), plus the run's
    # own few (claim, load, finish), the same for both sizes: here 5 and 14 when unloaded.
    assert small <= 100 + RUN_QUERIES and large <= 1000 + RUN_QUERIES, (small, large)
    assert max(parallel_workflows.THREADS_SEEN) <= int(conf.get("CONCURRENCY"))


def recorded(execution_id: str) -> int:
    return StepResult.objects.filter(execution_id=execution_id, status="completed").count()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_group_resumes_only_the_unfinished_members(
    scheduler, job, start_worker
):
    job.items = list(range(8))
    gates = [Path(f"{job.log}.hold-price-{n}") for n in (5, 6, 7)]
    for gate in gates:
        gate.touch()
    scheduler.start("p-kill", "fan-out", job)
    worker = start_worker()
    wait_until(
        lambda: recorded("p-kill") == 5 and all(count(job, f"start price {n}") for n in (5, 6, 7)),
        what="members 0-4 checkpointed while 5-7 run",
    )
    worker.kill()
    assert [count(job, f"done price {n}") for n in range(8)] == [1] * 5 + [0] * 3
    for gate in gates:
        gate.unlink()
    start_worker()  # reclaims once the dead worker's lease expires
    output = scheduler.wait_completion("p-kill", timeout=60)
    assert output == [n * 10 for n in range(8)] + [4]
    assert Execution.objects.get(pk="p-kill").recoveries == 1
    assert [count(job, f"start price {n}") for n in range(8)] == [1] * 5 + [2] * 3
    assert [count(job, f"done price {n}") for n in range(8)] == [1] * 8


def step_row(claim: store.Claim, position: int) -> StepResult:
    now = timezone.now()
    return StepResult(
        execution_id=claim.execution_id,
        run=claim.run,
        position=position,
        name=f"noop#{position + 1}",
        status="completed",
        result=position,
        started_at=now,
        finished_at=now,
    )


def test_a_batch_checkpoint_takes_rows_a_lost_answer_stored_and_is_fenced(scheduler):
    scheduler.start("p-batch", "fan-out-noop", 3)
    (claim,) = store.claim_due("test", 1, 30, tasks=["fan-out-noop"])
    first = [step_row(claim, 0), step_row(claim, 1)]
    store.checkpoint_many(claim, first, 30)
    again = [step_row(claim, 0), step_row(claim, 1), step_row(claim, 2)]
    store.checkpoint_many(claim, again, 30)  # as a retry after the first answer was lost
    assert [row.pk for row in again[:2]] == [row.pk for row in first]
    assert StepResult.objects.filter(execution_id="p-batch").count() == 3
    stale = replace(claim, token="stale")
    with pytest.raises(LeaseLost):
        store.checkpoint_many(stale, [step_row(claim, 3)], 30)
    assert StepResult.objects.filter(execution_id="p-batch").count() == 3


def test_outside_a_durable_function_the_calls_run_one_after_another(job):
    job.items = [1, 2]
    assert parallel_workflows.fan_out(job) == [10, 20, 4]
    assert [line for line in lines(job.log) if "price" in line] == [
        "job start price 1",
        "job done price 1",
        "job start price 2",
        "job done price 2",
    ]


def test_a_group_that_failed_is_run_again_by_a_rerun_from_its_failed_member(scheduler, job):
    job.fail_times = 2
    scheduler.start("p-rerun", "fan-out-shaky", job)
    run_until_idle()
    advance_time("2s")
    run_until_idle()
    assert scheduler.wait_completion("p-rerun", timeout=1).startswith("shaky failed")
    scheduler.rerun("p-rerun", from_step="shaky")
    run_until_idle()
    assert scheduler.wait_completion("p-rerun", timeout=1) == "results [10, 2, 30]"
    assert [count(job, f"start price {n}") for n in (1, 3)] == [1, 2]


def test_a_retry_after_a_failed_group_runs_only_its_failed_members(scheduler, job):
    job.fail_times = 2
    scheduler.start("p-retry", "fan-out-failing", job)
    run_until_idle()
    advance_time("2s")
    run_until_idle()
    with pytest.raises(ExecutionFailed, match="shaky"):
        scheduler.wait_completion("p-retry", timeout=1)
    first_run = rows("p-retry")
    scheduler.retry("p-retry")
    run_until_idle()
    assert scheduler.wait_completion("p-retry", timeout=1) == [10, 2, 30, 4]
    assert [count(job, f"start price {n}") for n in (1, 3)] == [1, 1]
    assert [count(job, f"start shaky {n}") for n in (2, 4)] == [3, 3]
    assert run_rows("p-retry", 2) == [
        (0, "price", "completed", 1),
        (1, "shaky", "completed", 1),
        (2, "price#2", "completed", 1),
        (3, "shaky#2", "completed", 1),
    ]
    assert run_rows("p-retry", 1) == [row[:4] for row in first_run]  # the first run is kept


def test_a_retry_cut_inside_a_group_keeps_its_finished_members_after_the_cut():
    def row(position: int, status: str, group: int | None = None) -> StepResult:
        return StepResult(
            position=position, name=f"s{position}", status=status, parallel_group=group
        )

    steps = [
        row(0, "completed"),
        row(1, "completed", 1),
        row(2, "retrying", 1),  # a worker lost too often while this member waited to retry
        row(3, "completed", 1),
    ]
    assert [r.position for r in runs.retry_keeps(steps, offered=())] == [0, 1, 3]


def run_rows(execution_id: str, run: int) -> list[tuple[int, str, str, int]]:
    steps = StepResult.objects.filter(execution_id=execution_id, run=run).order_by("position")
    return [(s.position, s.name, s.status, s.attempts) for s in steps]


def test_a_group_whose_members_changed_blocks_the_execution(scheduler, job):
    job.items = [0, 1, 2]
    scheduler.start("p-changed", "fan-out", job)
    run_until_idle()
    StepResult.objects.filter(execution_id="p-changed", position=1).update(name="old-price")
    due_again("p-changed")
    run_until_idle()
    execution = Execution.objects.get(pk="p-changed")
    assert execution.status == "blocked"
    assert "replayed step 'price#2' at position 1, where step 'old-price'" in execution.error
    assert [count(job, f"start price {n}") for n in range(3)] == [1, 1, 1]

"""Retry, rerun and restart: each begins a numbered run, keeps what it should (step bodies that
must not run again do not, counted in the job log), and leaves the earlier runs as history."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import wait_until
from tests.queries import step_reads
from tests.workflows import Approval, Job, lines
from zart_django import (
    EventAlreadyDelivered,
    ExecutionNotFound,
    PayloadError,
    RunRefused,
    StepNotFound,
    store,
)
from zart_django.approvals import decidable_by, decide, find_request
from zart_django.approvals.errors import ApprovalClosed
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.models import Event, Execution, Run, StepResult
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def starts(job: Job) -> Counter[str]:
    """How many times each step body started, from the job log."""
    prefix = f"{job.name} start "
    return Counter(line.removeprefix(prefix) for line in lines(job.log) if line.startswith(prefix))


def nothing_stored(execution_id: str) -> bool:
    execution = Execution.objects.get(pk=execution_id)
    return execution.run == 1 and not Run.objects.filter(execution_id=execution_id).exists()


@pytest.fixture
def failed(scheduler, job) -> str:
    """A "breaks" execution whose step "fragile" failed on its first attempt."""
    scheduler.start("f-1", "breaks", replace(job, fail_times=1))
    run_until_idle()
    assert scheduler.get("f-1").status == "failed"
    return "f-1"


class TestRetry:
    def test_runs_the_failed_step_again_and_not_the_completed_ones(self, scheduler, job, failed):
        info = scheduler.retry(failed)
        assert (info.status, info.run, info.error) == ("pending", 2, "")
        assert [s.name for s in info.steps] == ["first"]  # the failed row stays in run 1
        run_until_idle()
        assert scheduler.wait_completion(failed, timeout=1) == [
            "first ok",
            "fragile ok on attempt 2",
            "second ok",
        ]
        assert starts(job) == {"first": 1, "fragile": 2, "second": 1}

    def test_keeps_the_failed_run_as_history(self, scheduler, failed):
        scheduler.retry(failed)
        run_until_idle()
        one, two = scheduler.get(failed).runs
        assert (one.number, one.began, one.status) == (1, "start", "failed")
        assert "fragile failed on attempt 1" in one.error
        assert [(s.name, s.status, s.attempts) for s in one.steps] == [
            ("first", "completed", 1),
            ("fragile", "failed", 1),
        ]
        assert (two.number, two.began, two.status, two.error) == (2, "retry", "completed", "")
        assert [(s.name, s.status, s.attempts) for s in two.steps] == [
            ("first", "completed", 1),
            ("fragile", "completed", 1),
            ("second", "completed", 1),
        ]
        assert two.steps[0].started_at == one.steps[0].started_at  # kept, not run again

    def test_a_second_failure_can_be_retried_again(self, scheduler, job):
        scheduler.start("f-2", "breaks", replace(job, fail_times=2))
        run_until_idle()
        scheduler.retry("f-2")
        run_until_idle()
        assert scheduler.get("f-2").status == "failed"
        assert scheduler.retry("f-2").run == 3
        run_until_idle()
        assert scheduler.wait_completion("f-2", timeout=1)[1] == "fragile ok on attempt 3"
        assert starts(job) == {"first": 1, "fragile": 3, "second": 1}
        assert [r.status for r in scheduler.get("f-2").runs] == ["failed", "failed", "completed"]

    def test_a_wait_whose_event_was_offered_is_kept_and_takes_it(self, scheduler, job):
        scheduler.start("f-3", "three-steps", job)
        run_until_idle()
        # As an execution held with an event in its inbox that its wait has not taken yet.
        Event.objects.create(
            execution_id="f-3",
            name="go",
            payload={"approved": True, "reviewer": "Carol"},
            created_at=Execution.objects.get(pk="f-3").created_at,
        )
        Execution.objects.filter(pk="f-3").update(status="failed", error="held")
        info = scheduler.retry("f-3")
        assert [(s.name, s.status) for s in info.steps][-1] == ("go", "waiting")
        run_until_idle()
        assert scheduler.wait_completion("f-3", timeout=1)["results"][2] == "third ok by Carol"
        assert starts(job) == {"first": 1, "second": 1, "third": 1}

    def test_a_wait_with_nothing_offered_waits_again(self, scheduler, job):
        scheduler.start("f-4", "three-steps", job)
        run_until_idle()
        Execution.objects.filter(pk="f-4").update(status="failed", error="held")
        assert [s.name for s in scheduler.retry("f-4").steps] == ["first", "second"]
        run_until_idle()
        assert scheduler.get("f-4").waiting_on == "go"
        assert starts(job) == {"first": 1, "second": 1}

    def test_refuses_what_did_not_fail_and_stores_nothing(self, scheduler, job):
        scheduler.start("done", "no-input")
        scheduler.start("parked", "three-steps", job)
        scheduler.start("stopped", "three-steps", job)
        run_until_idle()
        scheduler.cancel("stopped")
        for execution_id, status in [
            ("done", "completed"),
            ("parked", "waiting"),
            ("stopped", "cancelled"),
        ]:
            with pytest.raises(RunRefused) as refused:
                scheduler.retry(execution_id)
            assert str(refused.value) == (
                f"execution {execution_id!r} cannot be retried: it is {status}"
                " (retry takes an execution that is failed)"
            )
            assert nothing_stored(execution_id)
        with pytest.raises(ExecutionNotFound):
            scheduler.retry("nobody")

    def test_a_running_execution_is_refused(self, scheduler, job):
        scheduler.start("busy", "three-steps", job)
        [claim] = store.claim_due("a test", 1, 30, tasks=["three-steps"])
        for begin in (scheduler.retry, scheduler.restart):
            with pytest.raises(RunRefused, match="it is running"):
                begin("busy")
        with pytest.raises(RunRefused, match="it is running"):
            scheduler.rerun("busy", "first")
        assert nothing_stored("busy")
        store.release([claim.token])


class TestRerun:
    def test_runs_the_step_and_what_follows_and_keeps_what_precedes(self, scheduler, job):
        scheduler.start("l-1", "loop", replace(job, items=[1, 2, 3]))
        run_until_idle()
        info = scheduler.rerun("l-1", from_step="square#2")
        assert [s.name for s in info.steps] == ["square"]
        run_until_idle()
        assert scheduler.wait_completion("l-1", timeout=1) == [1, 4, 9]
        assert Counter(lines(job.log)) == {"job square 1": 1, "job square 2": 2, "job square 3": 2}
        one, two = scheduler.get("l-1").runs
        assert (one.status, one.output, two.began, two.from_step) == (
            "completed",
            [1, 4, 9],
            "rerun",
            "square#2",
        )

    def test_an_unknown_step_names_the_recorded_ones(self, scheduler, job):
        scheduler.start("l-2", "loop", replace(job, items=[1, 2]))
        run_until_idle()
        with pytest.raises(StepNotFound) as missing:
            scheduler.rerun("l-2", from_step="cube")
        assert str(missing.value) == (
            "execution 'l-2' has no recorded step 'cube'; recorded steps: 'square', 'square#2'"
        )
        assert nothing_stored("l-2")
        with pytest.raises(PayloadError):
            scheduler.rerun("l-2", from_step="cu\x00be")

    def test_a_wait_after_the_step_waits_again(self, scheduler, job):
        scheduler.start("w-1", "three-steps", job)
        run_until_idle()
        scheduler.offer_event("w-1", "go", Approval(True, "Carol"))
        run_until_idle()
        assert scheduler.get("w-1").status == "completed"
        scheduler.rerun("w-1", from_step="go")
        run_until_idle()
        assert scheduler.get("w-1").waiting_on == "go"  # run 1's event is not taken again
        scheduler.offer_event("w-1", "go", Approval(False, "Dan"))
        with pytest.raises(EventAlreadyDelivered):
            scheduler.offer_event("w-1", "go", Approval(True, "Eve"))
        run_until_idle()
        output = scheduler.wait_completion("w-1", timeout=1)
        assert (output["approved"], output["results"][2]) == (False, "third ok by Dan")
        assert starts(job) == {"first": 1, "second": 1, "third": 2}

    def test_a_waiting_execution_drops_its_wait_and_waits_again(self, scheduler, job):
        scheduler.start("w-2", "three-steps", job)
        run_until_idle()
        scheduler.rerun("w-2", from_step="second")
        run_until_idle()
        scheduler.offer_event("w-2", "go", Approval(True, "Carol"))
        run_until_idle()
        assert scheduler.wait_completion("w-2", timeout=1)["approved"] is True
        assert starts(job) == {"first": 1, "second": 2, "third": 1}
        one, _ = scheduler.get("w-2").runs
        assert (one.status, [s.status for s in one.steps]) == (
            "waiting",
            ["completed", "completed", "waiting"],
        )

    def test_replay_reads_only_the_current_run_in_one_query(self, scheduler, job):
        scheduler.start("w-3", "three-steps", job)
        run_until_idle()
        scheduler.rerun("w-3", from_step="second")
        run_until_idle()
        scheduler.offer_event("w-3", "go", Approval(True, "Carol"))
        with CaptureQueriesContext(connection) as queries:
            run_until_idle()
        assert len(step_reads(queries)) == 1, step_reads(queries)
        assert StepResult.objects.filter(execution_id="w-3", run=1).count() == 3
        assert StepResult.objects.filter(execution_id="w-3", run=2).count() == 4


class TestRestart:
    def test_runs_everything_again_with_a_new_input(self, scheduler, job):
        scheduler.start("s-1", "breaks", job)
        run_until_idle()
        again = replace(job, name="again")
        info = scheduler.restart("s-1", again)
        assert (info.run, info.steps, info.input["name"]) == (2, [], "again")
        run_until_idle()
        assert scheduler.wait_completion("s-1", timeout=1)[0] == "first ok"
        assert starts(job) == {"first": 1, "fragile": 1, "second": 1}
        assert starts(again) == {"first": 1, "fragile": 1, "second": 1}
        assert [r.input["name"] for r in scheduler.get("s-1").runs] == ["job", "again"]

    def test_with_the_same_input_and_a_fresh_timeout(self, scheduler, job):
        scheduler.start("s-2", "slow-task", job)
        run_until_idle()
        advance_time(timedelta(seconds=31))
        run_until_idle()
        assert scheduler.get("s-2").status == "timed_out"
        scheduler.restart("s-2")
        run_until_idle()
        info = scheduler.get("s-2")
        assert (info.status, info.waiting_on, info.input) == ("waiting", "go", info.runs[0].input)
        assert starts(job) == {"first": 2}

    def test_an_input_that_does_not_fit_is_refused_and_nothing_stored(self, scheduler, job):
        scheduler.start("s-3", "breaks", job)
        run_until_idle()
        with pytest.raises(PayloadError):
            scheduler.restart("s-3", {"no": "log"})
        assert nothing_stored("s-3")


class TestApprovals:
    def test_a_rerun_asks_again_and_the_new_decision_completes_it(self, scheduler, job, manager):
        scheduler.start("ap-1", "counted-approval", job)
        run_until_idle()
        decide("ap-1", manager, approved=True, comment="yes")
        run_until_idle()
        assert scheduler.wait_completion("ap-1", timeout=1) == "approved by Alice Manager"

        scheduler.rerun("ap-1", from_step="approval:sign-off")
        run_until_idle()
        request = find_request("ap-1")
        assert (request.run, request.outcome, request.record) == (2, "pending", None)
        assert list(decidable_by(manager)) == [request]
        decide("ap-1", manager, approved=False, comment="changed my mind")
        run_until_idle()
        assert scheduler.wait_completion("ap-1", timeout=1) == "rejected by Alice Manager"
        assert starts(job) == {"first": 1, "second": 1}
        records = ApprovalRecord.objects.order_by("run")
        assert [(r.run, r.approved, r.comment) for r in records] == [
            (1, True, "yes"),
            (2, False, "changed my mind"),
        ]
        first = ApprovalRequest.objects.get(execution_id="ap-1", run=1)
        assert (first.outcome, first.record.comment) == ("approved", "yes")

    def test_a_request_left_pending_by_a_replaced_run_is_closed(self, scheduler, job, manager):
        scheduler.start("ap-2", "counted-approval", job)
        run_until_idle()
        scheduler.restart("ap-2")
        old = ApprovalRequest.objects.get(execution_id="ap-2", run=1)
        assert old.outcome == "closed (run 1 was replaced by run 2)"
        assert not decidable_by(manager).exists()
        with pytest.raises(ApprovalClosed):
            decide("ap-2", manager, approved=True)
        run_until_idle()
        decide("ap-2", manager, approved=True)
        run_until_idle()
        assert scheduler.wait_completion("ap-2", timeout=1) == "approved by Alice Manager"
        assert list(ApprovalRecord.objects.values_list("run", flat=True)) == [2]
        assert starts(job) == {"first": 2, "second": 1}

    def test_a_retry_keeps_a_decided_approval_and_asks_nothing(self, scheduler, job, manager):
        scheduler.start("ap-3", "counted-approval", job)
        run_until_idle()
        decide("ap-3", manager, approved=True)
        run_until_idle()
        Execution.objects.filter(pk="ap-3").update(status="failed", error="as if it had failed")
        scheduler.retry("ap-3")
        run_until_idle()
        assert scheduler.wait_completion("ap-3", timeout=1) == "approved by Alice Manager"
        assert ApprovalRequest.objects.filter(execution_id="ap-3").count() == 1
        assert starts(job) == {"first": 1, "second": 1}


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_worker_process_runs_a_retried_execution(scheduler, job, start_worker):
    start_worker()
    scheduler.start("wk-1", "breaks", replace(job, fail_times=1))
    wait_until(lambda: scheduler.get("wk-1").status == "failed", timeout=30, what="the failure")
    scheduler.retry("wk-1")
    assert scheduler.wait_completion("wk-1", timeout=30)[1] == "fragile ok on attempt 2"
    assert starts(job) == {"first": 1, "fragile": 2, "second": 1}

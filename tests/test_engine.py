"""The engine's semantics, run in-process with ``zart_django.testing`` (no worker process)."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from demo_project.approval.workflows import (
    ApprovalDecision,
    ApprovalOutput,
    ApprovalRequest,
    approval_task,
)
from tests import workflows
from tests.queries import step_reads, step_writes
from tests.workflows import Approval, lines, reference_approval
from zart_django import (
    DurableScheduler,
    EventAlreadyDelivered,
    EventExpired,
    ExecutionAlreadyExists,
    ExecutionFailed,
    ExecutionFinished,
    ExecutionNotFound,
    NonDeterminismError,
    PayloadError,
    TaskNotFound,
    WaitTimeout,
    store,
)
from zart_django.models import Event, Execution, StepResult
from zart_django.registry import default_registry
from zart_django.replay import run_execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db

REQUEST = ApprovalRequest("Bob", "staging-environment", "Need to test the new deployment pipeline")
YES = ApprovalDecision(approved=True, reviewer="Alice (Manager)", comment="ok")


def steps_of(execution_id: str) -> list[tuple[str, str]]:
    return [(s.name, s.status) for s in DurableScheduler().get(execution_id).steps]


class TestApprovalFlow:
    def test_parks_then_resumes_with_the_typed_decision(self, scheduler):
        scheduler.start_for(reference_approval, "a-1", REQUEST)
        run_until_idle()
        info = scheduler.get("a-1")
        assert info.status == "waiting"
        assert info.waiting_on == "manager-approval"
        assert steps_of("a-1") == [
            ("validate-request", "completed"),
            ("manager-approval", "waiting"),
        ]
        scheduler.offer_event("a-1", "manager-approval", YES)
        run_until_idle()
        output = scheduler.wait_completion("a-1", timeout=1)
        assert output == ApprovalOutput(
            "approved", "Bob", "staging-environment", "Alice (Manager)", "ok"
        )
        assert [name for name, _ in steps_of("a-1")] == [
            "validate-request",
            "manager-approval",
            "process-approved",
        ]

    def test_rejection_skips_provisioning(self, scheduler):
        scheduler.start_for(reference_approval, "a-2", REQUEST)
        run_until_idle()
        no = {"approved": False, "reviewer": "Carol", "comment": "not now"}
        scheduler.offer_event("a-2", "manager-approval", no)
        run_until_idle()
        assert scheduler.wait_completion("a-2", timeout=1).decision == "rejected"
        assert "process-approved" not in [name for name, _ in steps_of("a-2")]

    def test_output_is_typed_as_wait_completion_returns_it_and_get_keeps_the_json(self, scheduler):
        """Issue 9: get(id).output is the stored JSON; output(id) is the typed value."""
        scheduler.start_for(reference_approval, "a-5", REQUEST)
        run_until_idle()
        with pytest.raises(WaitTimeout, match="waiting"):
            scheduler.output("a-5")
        scheduler.offer_event("a-5", "manager-approval", YES)
        run_until_idle()
        typed = scheduler.output("a-5")
        assert typed == scheduler.wait_completion("a-5", timeout=1)
        assert isinstance(typed, ApprovalOutput)
        assert scheduler.get("a-5").output == asdict(typed)
        scheduler.start_for(reference_approval, "a-6", ApprovalRequest("", "db", "x"))
        run_until_idle()
        with pytest.raises(ExecutionFailed, match="requester name is required"):
            scheduler.output("a-6")

    def test_parked_execution_has_a_deadline_and_holds_no_lease(self, scheduler):
        scheduler.start_for(reference_approval, "a-3", REQUEST)
        run_until_idle()
        row = Execution.objects.get(pk="a-3")
        wait = StepResult.objects.get(execution_id="a-3", name="manager-approval")
        assert row.lease_token == ""
        assert row.scheduled_at == wait.deadline
        assert 119 <= (wait.deadline - wait.started_at).total_seconds() <= 121

    def test_validation_failure_fails_the_execution_with_its_message(self, scheduler):
        scheduler.start_for(reference_approval, "a-4", ApprovalRequest("", "db", "x"))
        run_until_idle()
        with pytest.raises(ExecutionFailed, match="requester name is required"):
            scheduler.wait_completion("a-4", timeout=1)


def replay_after_a_code_change(
    scheduler: DurableScheduler, execution_id: str, task: str, job
) -> list[dict]:
    """Run ``task`` (one step, then a wait) to its wait, deliver the event, and replay it with
    the step renamed, as after a deploy; return the recorded steps as they were before."""
    scheduler.start(execution_id, task, job)
    run_until_idle()
    scheduler.offer_event(execution_id, "go")
    before = list(StepResult.objects.filter(execution_id=execution_id).values())
    workflows.CODE_VERSION["v"] = 2
    try:
        run_until_idle()
    finally:
        workflows.CODE_VERSION["v"] = 1
    return before


class TestReplay:
    def test_finished_steps_never_run_again(self, scheduler, job):
        scheduler.start("r-1", "three-steps", job)
        run_until_idle()
        for _ in range(3):  # spurious wake-ups replay from the top
            Execution.objects.filter(pk="r-1").update(
                scheduled_at=Execution.objects.get(pk="r-1").created_at
            )
            run_until_idle()
        scheduler.offer_event("r-1", "go", Approval(True, "Carol"))
        run_until_idle()
        assert scheduler.wait_completion("r-1", timeout=1)["results"][2] == "third ok by Carol"
        assert lines(job.log) == [
            "job start first", "job done first",
            "job start second", "job done second",
            "job start third", "job done third",
        ]  # fmt: skip

    def test_resume_loads_all_steps_in_one_query(self, scheduler, job):
        scheduler.start("r-2", "three-steps", job)
        run_until_idle()
        scheduler.offer_event("r-2", "go", Approval(True, "Carol"))
        with CaptureQueriesContext(connection) as queries:
            run_until_idle()
        assert len(step_reads(queries)) == 1, step_reads(queries)
        writes = step_writes(queries)
        assert len(writes) == 1, writes  # the third step; offer_event closed the wait

    def test_same_step_in_a_loop_gets_numbered_occurrences(self, scheduler, job):
        job.items = [1, 2, 3]
        scheduler.start("r-3", "loop", job)
        run_until_idle()
        assert scheduler.wait_completion("r-3", timeout=1) == [1, 4, 9]
        assert [name for name, _ in steps_of("r-3")] == ["square", "square#2", "square#3"]

    def test_changed_code_blocks_with_both_step_names_and_keeps_history(self, scheduler, job):
        before = replay_after_a_code_change(scheduler, "r-4", "changing", job)
        info = scheduler.get("r-4")
        assert info.status == "blocked" and not info.is_finished
        assert "renamed-v2" in info.error and "renamed-v1" in info.error
        assert "zart_django.patched(" in info.error
        assert list(StepResult.objects.filter(execution_id="r-4").values()) == before

    def test_changed_code_raises_a_non_determinism_error_that_cannot_be_swallowed(
        self, scheduler, job
    ):
        workflows.SWALLOWED.clear()
        before = replay_after_a_code_change(scheduler, "r-8", "changing-swallows", job)
        (raised,) = workflows.SWALLOWED  # what the durable function saw at the changed step
        assert isinstance(raised, NonDeterminismError)
        assert "'renamed-v2'" in str(raised) and "'renamed-v1'" in str(raised)
        info = scheduler.get("r-8")
        assert (info.status, info.error) == ("blocked", str(raised))  # though it returned
        assert list(StepResult.objects.filter(execution_id="r-8").values()) == before

    def test_a_wait_cannot_be_swallowed_by_except_exception(self, scheduler, job):
        scheduler.start("r-5", "swallower", job)
        run_until_idle()
        assert scheduler.get("r-5").status == "waiting"
        scheduler.offer_event("r-5", "go", {"approved": True, "reviewer": "x"})
        run_until_idle()
        assert scheduler.wait_completion("r-5", timeout=1) == "woke"

    def test_a_step_inside_a_step_is_part_of_it_and_a_wait_there_is_refused(self, scheduler, job):
        scheduler.start("r-7", "nested", job)
        run_until_idle()
        assert scheduler.wait_completion("r-7", timeout=1) == (
            "10: RuntimeError: wait_for_event cannot be called inside a step; call it between steps"
        )
        assert [name for name, _ in steps_of("r-7")] == ["outer", "waits-inside"]

    def test_task_without_input(self, scheduler):
        scheduler.start("r-6", "no-input")
        run_until_idle()
        assert scheduler.wait_completion("r-6", timeout=1) == "done"


class TestEvents:
    def test_event_offered_before_the_wait_is_kept_and_consumed(self, scheduler, job):
        scheduler.start("e-1", "three-steps", job)
        scheduler.offer_event("e-1", "go", Approval(True, "Early"))
        run_until_idle()
        assert scheduler.wait_completion("e-1", timeout=1)["results"][2] == "third ok by Early"

    def test_second_delivery_is_refused_and_the_first_wins(self, scheduler, job):
        scheduler.start("e-2", "three-steps", job)
        scheduler.offer_event("e-2", "go", Approval(True, "First"))
        with pytest.raises(EventAlreadyDelivered, match="'go'"):
            scheduler.offer_event("e-2", "go", Approval(False, "Second"))
        run_until_idle()
        assert scheduler.wait_completion("e-2", timeout=1)["results"][2] == "third ok by First"

    def test_unknown_execution(self, scheduler):
        with pytest.raises(ExecutionNotFound, match="'nope'"):
            scheduler.offer_event("nope", "go", {})

    def test_finished_execution_takes_no_event(self, scheduler):
        scheduler.start("e-3", "no-input")
        run_until_idle()
        with pytest.raises(ExecutionFinished, match="completed"):
            scheduler.offer_event("e-3", "go", {})
        assert not Event.objects.filter(execution_id="e-3").exists()

    def test_payload_that_does_not_fit_the_parked_wait_is_rejected_and_nothing_stored(
        self, scheduler
    ):
        scheduler.start_for(reference_approval, "e-4", REQUEST)
        run_until_idle()
        state = Execution.objects.filter(pk="e-4").values().get()
        with pytest.raises(PayloadError, match="approved"):
            scheduler.offer_event(
                "e-4", "manager-approval", {"approved": "yes", "reviewer": "x", "comment": ""}
            )
        with pytest.raises(PayloadError, match="missing field.*comment"):
            scheduler.offer_event("e-4", "manager-approval", {"approved": True, "reviewer": "x"})
        assert not Event.objects.filter(execution_id="e-4").exists()
        assert Execution.objects.filter(pk="e-4").values().get() == state
        scheduler.offer_event("e-4", "manager-approval", asdict(YES))
        run_until_idle()
        assert scheduler.wait_completion("e-4", timeout=1).decision == "approved"

    def test_an_early_payload_is_checked_against_the_type_the_task_declares(self, scheduler, job):
        scheduler.start("e-8", "three-steps", job)
        with pytest.raises(PayloadError, match="reviewer"):
            scheduler.offer_event("e-8", "go", {"approved": True})
        assert not Event.objects.filter(execution_id="e-8").exists()
        scheduler.offer_event("e-8", "go", {"approved": True, "reviewer": "Typed"})
        run_until_idle()
        assert scheduler.wait_completion("e-8", timeout=1)["results"][2] == "third ok by Typed"

    def test_wait_times_out_at_its_stored_deadline(self, scheduler, job):
        scheduler.start("e-5", "waits-with-timeout", job)
        run_until_idle()
        advance_time("119s")
        run_until_idle()
        assert scheduler.get("e-5").status == "waiting"
        advance_time("2s")
        run_until_idle()
        assert scheduler.wait_completion("e-5", timeout=1) == "timed out"
        assert steps_of("e-5")[1] == ("go", "timed_out")

    def test_a_replay_before_the_deadline_does_not_extend_it(self, scheduler, job):
        scheduler.start("e-7", "waits-with-timeout", job)
        run_until_idle()
        deadline = Execution.objects.get(pk="e-7").scheduled_at
        advance_time("100s")
        Execution.objects.filter(pk="e-7").update(scheduled_at=deadline - timedelta(seconds=200))
        run_until_idle()  # a recovery or spurious wake-up replays the function
        assert Execution.objects.get(pk="e-7").scheduled_at == deadline
        advance_time("21s")
        run_until_idle()
        assert scheduler.wait_completion("e-7", timeout=1) == "timed out"

    def test_event_after_a_timeout_is_refused(self, scheduler, job):
        scheduler.start("e-6", "waits-with-timeout", job)
        run_until_idle()
        advance_time("121s")
        run_until_idle()
        with pytest.raises(ExecutionFinished):
            scheduler.offer_event("e-6", "go", Approval(True, "late"))

    def test_event_after_a_timeout_is_refused_while_the_execution_goes_on(self, scheduler, job):
        scheduler.start("e-9", "waits-then-sleeps", job)
        run_until_idle()
        advance_time("121s")
        with pytest.raises(EventExpired):  # the deadline passed, no worker woke yet
            scheduler.offer_event("e-9", "go", Approval(True, "late"))
        run_until_idle()
        assert scheduler.get("e-9").status == "waiting"  # on its sleep
        with pytest.raises(EventExpired):  # the wait is stored as timed out
            scheduler.offer_event("e-9", "go", Approval(True, "later"))
        assert not Event.objects.filter(execution_id="e-9").exists()
        advance_time("1h")
        run_until_idle()
        assert scheduler.wait_completion("e-9", timeout=1) == "timed out"


class TestStart:
    def test_same_id_same_input_is_idempotent(self, scheduler):
        first = scheduler.start_for(approval_task, "s-1", REQUEST)
        again = scheduler.start_for(approval_task, "s-1", REQUEST)
        assert again.created_at == first.created_at
        assert (first.created, again.created) == (True, False)
        assert not scheduler.get("s-1").created
        assert Execution.objects.filter(pk="s-1").count() == 1

    def test_a_new_start_answers_what_get_reads_back(self, scheduler, django_user_model):
        ann = django_user_model.objects.create_user("ann")
        first = scheduler.start_for(approval_task, "s-1b", REQUEST, started_by=ann)
        stored = scheduler.get("s-1b")
        assert first.created and not stored.created
        assert replace(first, created=False, unclaimed_for=stored.unclaimed_for) == stored
        assert (first.status, first.started_by, first.runs[0].input) == (
            "pending",
            "ann",
            stored.input,
        )

    def test_same_id_other_input_is_refused(self, scheduler):
        scheduler.start_for(approval_task, "s-2", REQUEST)
        other = ApprovalRequest("Eve", "prod", "because")
        with pytest.raises(ExecutionAlreadyExists, match="different input"):
            scheduler.start_for(approval_task, "s-2", other)
        assert Execution.objects.get(pk="s-2").input["requester_name"] == "Bob"

    def test_same_id_other_task_is_refused(self, scheduler, job):
        scheduler.start_for(approval_task, "s-3", REQUEST)
        with pytest.raises(ExecutionAlreadyExists, match="approval-task"):
            scheduler.start("s-3", "three-steps", job)

    def test_unknown_task_names_the_known_ones(self, scheduler):
        with pytest.raises(TaskNotFound, match="'nope'.*approval-task"):
            scheduler.start("s-4", "nope", {})
        assert not Execution.objects.filter(pk="s-4").exists()

    def test_input_that_does_not_fit_is_refused(self, scheduler):
        with pytest.raises(PayloadError, match="requester_name"):
            scheduler.start("s-5", "approval-task", {"resource": "x", "reason": "y"})
        assert not Execution.objects.filter(pk="s-5").exists()

    def test_ids_and_event_names_that_do_not_fit_are_refused(self, scheduler, job):
        for bad in ("", "x" * 201):
            with pytest.raises(PayloadError, match="execution id must be"):
                scheduler.start(bad, "three-steps", job)
        assert not Execution.objects.exists()
        scheduler.start("s-6", "three-steps", job)
        with pytest.raises(PayloadError, match="event name must be"):
            scheduler.offer_event("s-6", "g" * 201, {})
        assert not Event.objects.exists()

    def test_unknown_execution_id(self, scheduler):
        with pytest.raises(ExecutionNotFound):
            scheduler.get("missing")
        with pytest.raises(ExecutionNotFound):
            scheduler.wait_completion("missing", timeout=0.1)


class TestRetries:
    def test_retried_until_success_counting_attempts_exactly(self, scheduler, job):
        job.fail_times = 2
        scheduler.start("t-1", "retrying", job)
        run_until_idle()
        assert scheduler.get("t-1").status == "pending"  # rescheduled, no thread sleeping
        advance_time("1s")
        run_until_idle()
        advance_time("1s")
        run_until_idle()
        assert scheduler.wait_completion("t-1", timeout=1) == "succeeded on attempt 3"
        assert scheduler.get("t-1").steps[0].attempts == 3
        assert lines(job.log).count("job start flaky") == 3

    def test_exhausted_retries_raise_step_failed_into_the_function(self, scheduler, job):
        job.fail_times = 5
        scheduler.start("t-2", "retrying", job)
        for _ in range(3):
            run_until_idle()
            advance_time("1s")
        assert scheduler.wait_completion("t-2", timeout=1).startswith(
            "gave up: step 'flaky' failed after 3 attempts: ConnectionError: attempt 3 failed"
        )
        assert lines(job.log).count("job start flaky") == 3

    def test_retry_waits_for_its_delay(self, scheduler, job):
        job.fail_times = 1
        scheduler.start("t-3", "retrying", job)
        run_until_idle()
        run_until_idle()
        assert lines(job.log).count("job start flaky") == 1

    def test_max_attempts_one_means_one_run(self, scheduler, job):
        scheduler.start("t-5", "one-attempt", job)
        for _ in range(3):
            run_until_idle()
            advance_time("2s")
        with pytest.raises(ExecutionFailed, match="after 1 attempt: RuntimeError: no luck"):
            scheduler.wait_completion("t-5", timeout=1)
        assert lines(job.log) == ["job start once-only"]

    def test_step_without_retry_runs_once_and_fails_the_execution(self, scheduler, job):
        scheduler.start("t-4", "failing", job)
        run_until_idle()
        with pytest.raises(ExecutionFailed, match="bad input"):
            scheduler.wait_completion("t-4", timeout=1)
        assert lines(job.log) == ["job start no-retry"]
        assert steps_of("t-4") == [("no-retry", "failed")]


class TestLifecycle:
    def test_execution_timeout(self, scheduler, job):
        scheduler.start("l-1", "slow-task", job)
        run_until_idle()
        advance_time("31s")
        run_until_idle()
        info = scheduler.get("l-1")
        assert info.status == "timed_out"
        with pytest.raises(ExecutionFailed, match="timed_out"):
            scheduler.wait_completion("l-1", timeout=1)

    def test_sleep_parks_until_its_time(self, scheduler, job):
        scheduler.start("l-2", "sleeper", job)
        run_until_idle()
        assert scheduler.get("l-2").waiting_on == "sleep:nap"
        advance_time("59m")
        run_until_idle()
        assert scheduler.get("l-2").status == "waiting"
        advance_time("2m")
        run_until_idle()
        assert scheduler.wait_completion("l-2", timeout=1) == "rested"

    def test_cancel_stops_for_real(self, scheduler, job):
        scheduler.start("l-3", "three-steps", job)
        run_until_idle()
        scheduler.cancel("l-3")
        with pytest.raises(ExecutionFinished, match="cancelled"):
            scheduler.offer_event("l-3", "go", Approval(True, "x"))
        run_until_idle()
        assert "job start third" not in lines(job.log)
        with pytest.raises(ExecutionFailed, match="cancelled"):
            scheduler.wait_completion("l-3", timeout=1)
        with pytest.raises(ExecutionFinished):
            scheduler.cancel("l-3")

    def test_wait_completion_gives_up_with_a_clear_timeout(self, scheduler, job):
        scheduler.start("l-4", "three-steps", job)
        run_until_idle()
        with pytest.raises(WaitTimeout, match="waiting"):
            scheduler.wait_completion("l-4", timeout=0.1)


class TestLeases:
    def test_a_stale_worker_cannot_write_after_its_lease_passed(self, scheduler, job):
        scheduler.start("z-1", "three-steps", job)
        (stale,) = store.claim_due("stale-worker", 1, lease=2, tasks=["three-steps"])
        advance_time("3s")
        (fresh,) = store.claim_due("fresh-worker", 1, lease=2, tasks=["three-steps"])
        assert fresh.recoveries == 1
        assert run_execution(stale, default_registry) == "lease lost"
        assert not StepResult.objects.filter(execution_id="z-1").exists()
        assert run_execution(fresh, default_registry) == "waiting"
        assert (
            lines(job.log).count("job done first") == 2
        )  # the stale body ran, its result did not land
        assert steps_of("z-1")[:2] == [("first", "completed"), ("second", "completed")]

    def test_a_claim_renews_the_late_leases_it_is_given_before_it_takes_work(self, scheduler, job):
        """A worker whose heartbeat is late hands its claims in flight to its next claim: their
        leases are renewed first, so the claim takes other due work but not its own back, and
        another worker finds the execution owned."""
        scheduler.start("z-5", "three-steps", job)
        (running,) = store.claim_due("worker", 1, lease=2, tasks=["three-steps"])
        scheduler.start("z-6", "three-steps", job)
        advance_time("3s")  # the lease of z-5 passed: its heartbeat is late
        taken = store.claim_due("worker", 10, lease=2, tasks=["three-steps"], renew=[running])
        assert [claim.execution_id for claim in taken] == ["z-6"]
        advance_time("1s")
        assert store.claim_due("other-worker", 10, lease=2, tasks=["three-steps"]) == []
        assert run_execution(running, default_registry) == "waiting"
        assert Execution.objects.get(pk="z-5").recoveries == 0
        assert lines(job.log).count("job done second") == 1

    def test_cancel_while_running_stops_at_the_next_checkpoint(self, scheduler, job):
        scheduler.start("z-2", "three-steps", job)
        (claim,) = store.claim_due("worker", 1, lease=30, tasks=["three-steps"])
        scheduler.cancel("z-2")
        assert run_execution(claim, default_registry) == "lease lost"
        assert scheduler.get("z-2").status == "cancelled"
        assert "job start second" not in lines(job.log)

    def test_an_execution_that_keeps_killing_workers_fails_after_max_recoveries(
        self, scheduler, job, settings
    ):
        settings.ZART = {**settings.ZART, "MAX_RECOVERIES": 2}
        scheduler.start("z-3", "three-steps", job)
        for _ in range(3):
            store.claim_due("doomed-worker", 1, lease=1, tasks=["three-steps"])
            advance_time("2s")
        run_until_idle()
        info = scheduler.get("z-3")
        assert info.status == "failed"
        assert "lost 3 times" in info.error

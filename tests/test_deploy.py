"""Deploy safety, in-process: workers run only the tasks they have, unclaimed work is visible,
``patched`` keeps old and new executions right, a history mismatch blocks instead of failing.

The same promises with real worker processes on other code are in tests/test_deploy_workers.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests import workflows
from tests.approval_helpers import make_user
from tests.deploy_workflows import PATCH
from tests.workflows import Job, lines, no_input
from zart_django import DurableScheduler, TaskRegistry, patched, store
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRequest
from zart_django.models import Execution, StepResult
from zart_django.registry import default_registry
from zart_django.replay import run_execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def only(*names: str) -> TaskRegistry:
    """The registry of a worker whose code has only these tasks of the default registry."""
    registry = TaskRegistry()
    for name in names:
        registry.register(name, default_registry.get(name))
    return registry


class TestWorkersRunOnlyWhatTheyKnow:
    def test_an_execution_of_a_task_the_worker_lacks_stays_pending_for_one_that_has_it(
        self, scheduler, job
    ):
        scheduler.start("u-1", "three-steps", job)
        scheduler.start("u-2", "no-input")
        run_until_idle(only("no-input"))  # an older worker: "three-steps" is not in its code
        assert scheduler.get("u-2").status == "completed"
        info = scheduler.get("u-1")
        assert (info.status, info.steps, info.error) == ("pending", [], "")
        assert lines(job.log) == []
        run_until_idle()  # a worker that has it
        assert scheduler.get("u-1").status == "waiting"

    def test_a_claim_for_a_task_the_worker_lacks_is_handed_back_not_failed(self, scheduler, job):
        scheduler.start("u-3", "three-steps", job)
        (claim,) = store.claim_due("w", 1, lease=30, tasks=["three-steps"])
        assert run_execution(claim, only("no-input")) == "handed back"
        execution = Execution.objects.get(pk="u-3")
        assert (execution.status, execution.error, execution.recoveries) == ("pending", "", 0)

    def test_no_claim_without_tasks(self, scheduler):
        scheduler.start("u-4", "no-input")
        assert store.claim_due("w", 10, lease=30, tasks=[]) == []
        assert scheduler.get("u-4").status == "pending"

    def test_get_says_how_long_no_worker_claimed_it(self, scheduler, job):
        scheduler.start("u-5", "three-steps", job)
        run_until_idle(only("no-input"))
        advance_time("10m")
        assert scheduler.get("u-5").unclaimed_for >= timedelta(minutes=10)
        run_until_idle()
        assert scheduler.get("u-5").unclaimed_for is None  # parked with no deadline: not due

    def test_the_admin_shows_and_filters_executions_no_worker_claimed(self, scheduler, job):
        scheduler.start("u-6", "three-steps", job)
        scheduler.start("u-7", no_input.name)
        Execution.objects.filter(pk="u-6").update(
            scheduled_at=Execution.objects.get(pk="u-6").created_at - timedelta(minutes=12)
        )
        client = Client()
        client.force_login(make_user("root", "zart_django.view_execution", staff=True))
        page = client.get("/admin/zart_django/execution/").content.decode()
        assert "not claimed for" in page and "12\xa0minutes" in page
        stale = client.get("/admin/zart_django/execution/?unclaimed=5m").content.decode()
        assert "u-6" in stale and "u-7" not in stale


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_claim_still_uses_the_due_index_on_postgresql(scheduler):
    """The task filter does not cost the partial index: with 20,000 finished and 20,000 parked
    executions beside a few due ones, the plan reads ``zart_execution_due``."""
    table = Execution._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, task_name, status, input, error, waiting_on, lease_token,"
            " lease_owner, recoveries, run, created_at, updated_at)"
            " SELECT 'bulk-' || i, 'three-steps', CASE WHEN i % 2 = 0 THEN 'completed'"
            " ELSE 'waiting' END, 'null', '', '', '', '', 0, 1, now(), now()"
            " FROM generate_series(1, 40000) AS i"
        )
        cursor.execute(f"ANALYZE {table}")
    scheduler.start("u-8", "no-input")
    with CaptureQueriesContext(connection) as queries:
        store.claim_due("w", 10, lease=30, tasks=["no-input", "three-steps"])
    (claim_sql,) = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + claim_sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "zart_execution_due" in plan, plan


def deploy(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    """The code of tests/deploy_workflows.py this process runs from now on."""
    monkeypatch.setenv("ZART_TEST_CODE", version)


def history(execution_id: str) -> list[tuple[str, str]]:
    return list(
        StepResult.objects.filter(execution_id=execution_id)
        .order_by("position")
        .values_list("name", "kind")
    )


def finished(job: Job, step_name: str) -> int:
    return lines(job.log).count(f"{job.name} done {step_name}")


def wake(execution_id: str) -> None:
    """Make a parked execution due, as a spurious wake-up (a lease recovery, an early event)."""
    Execution.objects.filter(pk=execution_id).update(
        scheduled_at=Execution.objects.get(pk=execution_id).created_at
    )


def retry_blocked() -> list[str]:
    """What a worker started now does first."""
    return store.retry_blocked(default_registry.names(), store.database_now())


class TestPatched:
    def test_a_new_execution_records_the_marker_and_runs_the_new_code(
        self, scheduler, job, manager, monkeypatch
    ):
        deploy(monkeypatch, "patched")
        scheduler.start("p-1", "deploy-approval", job)
        run_until_idle()
        assert history("p-1") == [
            ("prepare", "step"),
            (PATCH, "patch"),
            ("check-budget", "step"),
            ("approval-opened", "step"),
            ("approval:manager", "event"),
        ]
        decide("p-1", manager, approved=True)
        run_until_idle()
        output = scheduler.wait_completion("p-1", timeout=1)
        assert output == {
            "budget": "check-budget ok",
            "approved": True,
            "reviewer": "Alice Manager",
        }
        assert [finished(job, s) for s in ("prepare", "check-budget", "provision")] == [1, 1, 1]

    def test_an_execution_parked_before_the_patch_replays_the_old_code(
        self, scheduler, job, manager, monkeypatch
    ):
        scheduler.start("p-2", "deploy-approval", job)
        run_until_idle()  # v1: prepare, then the approval
        deploy(monkeypatch, "patched")
        decide("p-2", manager, approved=True)
        run_until_idle()
        assert scheduler.wait_completion("p-2", timeout=1)["budget"] is None
        assert (PATCH, "patch") not in history("p-2")
        assert finished(job, "check-budget") == 0
        assert [finished(job, s) for s in ("prepare", "provision")] == [1, 1]

    def test_removing_the_patch_keeps_executions_that_recorded_it_running(
        self, scheduler, job, manager, monkeypatch
    ):
        deploy(monkeypatch, "patched")
        scheduler.start("p-3", "deploy-approval", job)
        run_until_idle()
        deploy(monkeypatch, "cleaned")  # the old branch and the patched() call removed
        decide("p-3", manager, approved=True)
        run_until_idle()
        assert scheduler.wait_completion("p-3", timeout=1)["budget"] == "check-budget ok"
        assert finished(job, "check-budget") == 1

    def test_the_first_answer_holds_for_the_run_and_costs_one_marker(self, job):
        answers: list[bool] = []
        registry = TaskRegistry()
        registry.register("asks-twice", lambda j: answers.extend([patched("x"), patched("x")]))
        DurableScheduler(registry).start("p-4", "asks-twice", {"log": job.log})
        run_until_idle(registry)
        assert answers == [True, True]
        assert history("p-4") == [("x", "patch")]

    def test_outside_a_durable_function_it_is_refused(self):
        with pytest.raises(RuntimeError, match="inside a durable function"):
            patched(PATCH)


class TestBlocked:
    def test_a_history_mismatch_blocks_naming_the_step_and_the_fix(
        self, scheduler, job, manager, monkeypatch, caplog
    ):
        scheduler.start("b-1", "deploy-approval", job)
        run_until_idle()
        deploy(monkeypatch, "unpatched")
        decide("b-1", manager, approved=True)
        run_until_idle()
        info = scheduler.get("b-1")
        assert (info.status, info.is_finished, info.finished_at) == ("blocked", False, None)
        assert "step 'check-budget' at position 1" in info.error
        assert "step 'approval-opened' is recorded" in info.error
        assert 'zart_django.patched("<patch id>")' in info.error and "or revert" in info.error
        assert [r.levelname for r in caplog.records if "blocked" in r.getMessage()] == ["ERROR"]
        assert finished(job, "check-budget") == 0
        run_until_idle()  # not due: nobody replays it in a loop
        assert scheduler.get("b-1").status == "blocked"

    def test_a_decision_given_while_blocked_is_used_once_fixed_code_resumes_it(
        self, scheduler, job, manager, monkeypatch
    ):
        scheduler.start("b-2", "deploy-approval", job)
        run_until_idle()
        deploy(monkeypatch, "unpatched")
        wake("b-2")
        run_until_idle()
        assert scheduler.get("b-2").status == "blocked"
        assert ApprovalRequest.objects.open().filter(execution_id="b-2").exists()
        decide("b-2", manager, approved=True, comment="while blocked")
        run_until_idle()
        assert scheduler.get("b-2").status == "blocked"  # kept, not acted on yet
        deploy(monkeypatch, "patched")
        assert retry_blocked() == ["b-2"]
        run_until_idle()
        output = scheduler.wait_completion("b-2", timeout=1)
        assert output == {"budget": None, "approved": True, "reviewer": "Alice Manager"}
        assert [finished(job, s) for s in ("prepare", "check-budget", "provision")] == [1, 0, 1]

    def test_retry_resumes_a_blocked_execution_on_the_fixed_code(
        self, scheduler, job, manager, monkeypatch
    ):
        scheduler.start("b-4", "deploy-approval", job)
        run_until_idle()
        deploy(monkeypatch, "unpatched")
        decide("b-4", manager, approved=True)
        run_until_idle()
        assert scheduler.get("b-4").status == "blocked"
        deploy(monkeypatch, "patched")
        info = scheduler.retry("b-4")
        assert (info.status, info.run, info.error) == ("pending", 1, "")
        run_until_idle()
        assert scheduler.wait_completion("b-4", timeout=1)["approved"] is True
        assert [finished(job, s) for s in ("prepare", "check-budget", "provision")] == [1, 0, 1]

    def test_an_event_offered_while_blocked_is_kept(self, scheduler, job):
        scheduler.start("b-3", "changing", job)
        run_until_idle()
        workflows.CODE_VERSION["v"] = 2
        try:
            wake("b-3")
            run_until_idle()
        finally:
            workflows.CODE_VERSION["v"] = 1
        assert scheduler.get("b-3").status == "blocked"
        scheduler.offer_event("b-3", "go")
        retry_blocked()
        run_until_idle()
        assert scheduler.wait_completion("b-3", timeout=1) == "v1"

    def test_each_block_is_retried_once_by_a_worker_started_after_it(
        self, scheduler, job, manager, monkeypatch
    ):
        scheduler.start("b-4", "deploy-approval", job)
        run_until_idle()
        before_the_block = store.database_now()
        deploy(monkeypatch, "unpatched")
        decide("b-4", manager, approved=True)
        run_until_idle()
        names = default_registry.names()
        assert store.retry_blocked(names, before_the_block) == []  # started before: same code
        started = store.database_now()
        assert store.retry_blocked(names, started) == ["b-4"]
        run_until_idle()  # still the mismatching code: blocked again, after that start
        assert scheduler.get("b-4").status == "blocked"
        assert store.retry_blocked(names, started) == []
        assert store.retry_blocked(["three-steps"], store.database_now()) == []  # not its task

    def test_a_blocked_execution_can_be_cancelled(self, scheduler, job, manager, monkeypatch):
        scheduler.start("b-5", "deploy-approval", job)
        run_until_idle()
        deploy(monkeypatch, "unpatched")
        wake("b-5")
        run_until_idle()
        scheduler.cancel("b-5")
        assert scheduler.get("b-5").status == "cancelled"
        assert retry_blocked() == []

"""``@durable(on_failure=...)``: the handler runs durably when an execution fails or times out,
its result is recorded, the execution still ends failed or timed out; a worker SIGKILLed during
compensation is resumed without repeating finished compensation steps."""

from __future__ import annotations

from pathlib import Path

import pytest
from rest_framework.test import APIClient

from tests.approval_helpers import make_user
from tests.conftest import wait_until
from tests.values_workflows import order_saga, order_saga_broken_undo
from tests.workflows import Job, lines
from zart_django import Compensation, Failure
from zart_django.models import Execution
from zart_django.testing import advance_time, run_until_idle


def count(job: Job, line: str) -> int:
    return lines(job.log).count(f"{job.name} {line}")


@pytest.fixture
def failing_job(tmp_path: Path) -> Job:
    return Job(log=str(tmp_path / "steps.log"), fail_times=1)


def step_names(scheduler, execution_id: str) -> list[tuple[str, str]]:
    return [(s.name, s.status) for s in scheduler.get(execution_id).steps]


@pytest.mark.django_db
class TestInProcess:
    def test_a_failed_step_runs_the_handler_and_the_execution_stays_failed(
        self, scheduler, failing_job
    ):
        scheduler.start_for(order_saga, "c-1", failing_job)
        run_until_idle()
        info = scheduler.get("c-1")
        assert info.status == "failed"
        assert "StepFailed" in info.error and "no capacity left" in info.error
        error = (
            "StepFailed: step 'provision' failed after 1 attempt: RuntimeError: no capacity left"
        )
        assert info.compensation == Compensation(
            status="completed",
            failure=Failure(step="provision", error=error, timed_out=False),
            result={
                "refund": f"refund ok: {error}",
                "notify": "notify ok",
                "failed_step": "provision",
                "timed_out": False,
            },
            error="",
        )
        assert step_names(scheduler, "c-1") == [
            ("charge", "completed"),
            ("provision", "failed"),
            ("refund", "completed"),
            ("notify", "completed"),
        ]

    def test_the_api_and_the_admin_show_the_compensation(
        self, scheduler, failing_job, admin_client
    ):
        scheduler.start_for(order_saga, "c-6", failing_job)
        run_until_idle()
        client = APIClient()
        client.force_authenticate(make_user("ops", "zart_django.view_execution"))
        detail = client.get("/api/executions/c-6/").json()
        assert detail["status"] == "failed"
        assert detail["compensation"]["status"] == "completed"
        assert detail["compensation"]["failure"]["step"] == "provision"
        assert detail["compensation"]["result"]["notify"] == "notify ok"
        page = admin_client.get("/admin/zart_django/execution/c-6/change/").content.decode()
        assert "compensation" in page and "notify ok" in page

    def test_a_timeout_runs_the_handler_even_when_it_parks(self, scheduler, job):
        scheduler.start_for(order_saga, "c-2", job)
        run_until_idle()
        assert scheduler.get("c-2").waiting_on == "shipped"
        advance_time("61m")
        run_until_idle()
        info = scheduler.get("c-2")
        assert (info.status, info.compensation.status) == ("waiting", "running")
        assert info.waiting_on == "refund-approved"  # the handler's own wait, free of the timeout
        scheduler.offer_event("c-2", "refund-approved")
        run_until_idle()
        info = scheduler.get("c-2")
        assert (info.status, info.error) == ("timed_out", "timed out after 1:00:00")
        assert info.compensation.failure == Failure("", "timed out after 1:00:00", True)
        assert info.compensation.result["timed_out"] is True

    def test_a_failing_handler_is_recorded_and_the_execution_still_fails(
        self, scheduler, failing_job
    ):
        scheduler.start_for(order_saga_broken_undo, "c-3", failing_job)
        run_until_idle()
        info = scheduler.get("c-3")
        assert info.status == "failed"
        assert "no capacity left" in info.error
        assert info.compensation.status == "failed"
        assert "the refund service is down" in info.compensation.error
        assert info.compensation.result is None

    def test_a_retry_forgets_the_compensation_and_runs_the_failed_step_again(
        self, scheduler, failing_job
    ):
        scheduler.start_for(order_saga, "c-4", failing_job)
        run_until_idle()
        Execution.objects.filter(pk="c-4").update(input={**failing_job.__dict__, "fail_times": 0})
        scheduler.retry("c-4")
        assert scheduler.get("c-4").compensation is None
        run_until_idle()
        info = scheduler.get("c-4")
        assert (info.status, info.compensation) == ("waiting", None)
        assert step_names(scheduler, "c-4") == [
            ("charge", "completed"),
            ("provision", "completed"),
            ("shipped", "waiting"),
        ]
        assert count(failing_job, "done charge") == 1

    def test_a_completed_execution_has_no_compensation(self, scheduler, job):
        scheduler.start_for(order_saga, "c-5", job)
        scheduler.offer_event("c-5", "shipped")
        run_until_idle()
        info = scheduler.get("c-5")
        assert (info.status, info.compensation) == ("completed", None)
        assert count(job, "start refund") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_worker_killed_during_compensation_is_resumed_without_repeating_its_steps(
    scheduler, failing_job, start_worker
):
    gate = Path(f"{failing_job.log}.hold-notify")
    gate.touch()
    scheduler.start("c-k", "order-saga", failing_job)
    worker = start_worker()
    wait_until(lambda: count(failing_job, "start notify"), what="the compensation's second step")
    worker.kill()
    assert Execution.objects.get(pk="c-k").compensation_status == "running"
    gate.unlink()
    start_worker()
    wait_until(
        lambda: Execution.objects.get(pk="c-k").status == "failed", what="the execution to end"
    )
    info = scheduler.get("c-k")
    assert info.compensation.status == "completed"
    assert info.compensation.result["notify"] == "notify ok"
    assert count(failing_job, "done charge") == 1
    assert count(failing_job, "start provision") == 1
    assert count(failing_job, "start refund") == count(failing_job, "done refund") == 1
    assert count(failing_job, "start notify") == 2  # the killed attempt, then the one that ended
    assert count(failing_job, "done notify") == 1
    assert Execution.objects.get(pk="c-k").recoveries == 1

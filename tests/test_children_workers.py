"""Child executions under real worker processes killed (SIGKILL) at the bad moments: the
child's finished steps never run twice, nothing is started twice, the parent resumes with the
child's output. Step bodies log "start X" / "done X" lines to a file shared by processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.child_workflows import Child, Family, parent_of_one
from tests.conftest import wait_until
from tests.workflows import Job, lines
from zart_django.models import Execution, StepResult

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

OUTPUT = {"built": ["child-first ok", "child-second ok"], "typed": "Built", "used": "used 2 parts"}


def hold(job: Job, point: str) -> Path:
    path = Path(f"{job.log}.hold-{point}")
    path.touch()
    return path


def count(job: Job, line: str) -> int:
    return lines(job.log).count(line)


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def recorded(execution_id: str) -> dict[str, str]:
    return {r.name: r.status for r in StepResult.objects.filter(execution_id=execution_id)}


def family(job: Job) -> Family:
    return Family(job, Child(Job(log=job.log, name="job-child")))


def assert_ran_once(job: Job, *steps: str) -> None:
    for line in steps:
        assert count(job, line) == 1, lines(job.log)


def test_killed_while_the_parent_is_parked_and_the_child_runs(scheduler, job, start_worker):
    gate = hold(job, "child-second")
    scheduler.start_for(parent_of_one, "kp-1", family(job))
    worker = start_worker()
    wait_until(lambda: "job-child start child-second" in lines(job.log), what="the child's step")
    wait_until(lambda: status("kp-1") == "waiting", what="the parent to park on its child")
    worker.kill()
    assert Execution.objects.get(pk="kp-1").waiting_on == "child:job-child"
    assert recorded("job-child") == {"child-first": "completed"}
    gate.unlink()
    start_worker()  # reclaims the child once the dead worker's lease expires
    assert scheduler.wait_completion("kp-1", timeout=30) == OUTPUT
    assert Execution.objects.filter(parent_id="kp-1").count() == 1
    assert_ran_once(job, "job-child start child-first", "job-child done child-second")
    assert count(job, "job-child start child-second") == 2  # the killed attempt, then the one
    assert_ran_once(job, "job start parent-after")


def test_killed_after_the_child_ended_while_the_parent_uses_its_output(
    scheduler, job, start_worker
):
    gate = hold(job, "parent-after")
    scheduler.start_for(parent_of_one, "kp-2", family(job))
    worker = start_worker()
    wait_until(lambda: "job start parent-after" in lines(job.log), what="the parent to resume")
    assert status("job-child") == "completed"
    worker.kill()
    gate.unlink()
    start_worker()
    assert scheduler.wait_completion("kp-2", timeout=30) == OUTPUT
    assert Execution.objects.filter(parent_id="kp-2").count() == 1
    assert_ran_once(job, "job-child start child-first", "job-child start child-second")
    assert count(job, "job start parent-after") == 2  # the killed attempt, then the one
    assert_ran_once(job, "job done parent-after")


def test_cancelling_the_parent_stops_the_child_a_worker_is_running(scheduler, job, start_worker):
    gate = hold(job, "child-second")
    scheduler.start_for(parent_of_one, "kp-3", family(job))
    worker = start_worker()
    wait_until(lambda: "job-child start child-second" in lines(job.log), what="the child's step")
    wait_until(lambda: status("kp-3") == "waiting", what="the parent to park on its child")
    scheduler.cancel("kp-3")
    assert (status("kp-3"), status("job-child")) == ("cancelled", "cancelled")
    gate.unlink()  # the step's body ends; its checkpoint finds the child cancelled
    wait_until(lambda: "execution job-child: lease lost" in worker.output(), what="lease lost")
    assert recorded("job-child") == {"child-first": "completed"}
    assert (status("kp-3"), status("job-child")) == ("cancelled", "cancelled")
    assert count(job, "job start parent-after") == 0

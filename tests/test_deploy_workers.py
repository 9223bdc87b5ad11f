"""Deploys under parked executions, with real worker processes: a worker started with another
``ZART_TEST_CODE`` runs another version of tests/deploy_workflows.py, one started with
``ZART_TEST_WORKFLOW_MODULES=tests.workflows`` has none of its tasks. Step bodies log "start X" /
"done X" lines, so a test sees that no finished body ran twice."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.workflows import Job, lines
from zart_django.approvals import decide
from zart_django.models import Execution, StepResult

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def finished(job: Job, step_name: str) -> int:
    return lines(job.log).count(f"{job.name} done {step_name}")


def parked(*ids: str) -> bool:
    return all(status(execution_id) == "waiting" for execution_id in ids)


def nothing_failed() -> None:
    assert not Execution.objects.exclude(status__in=["completed", "waiting", "pending"]).exists()


def test_patched_keeps_old_and_new_executions_right_through_two_deploys(
    scheduler, tmp_path: Path, start_worker, manager, monkeypatch
):
    """v1 parks one execution; the deploy of the patched code parks another (with the marker);
    both finish right; then the deploy that removed the patch finishes the one with the marker."""
    log = str(tmp_path / "steps.log")
    old, new = Job(log=log, name="old"), Job(log=log, name="new")
    monkeypatch.setenv("ZART_TEST_CODE", "v1")
    v1 = start_worker()
    scheduler.start("d-old", "deploy-approval", old)
    wait_until(lambda: parked("d-old"), what="v1 to park d-old on its approval")
    assert v1.terminate() == 0

    monkeypatch.setenv("ZART_TEST_CODE", "patched")
    patched = start_worker()
    scheduler.start("d-new", "deploy-approval", new)
    wait_until(lambda: parked("d-new"), what="the patched code to park d-new")
    decide("d-old", manager, approved=True)
    assert scheduler.wait_completion("d-old", timeout=30)["budget"] is None
    assert patched.terminate() == 0

    monkeypatch.setenv("ZART_TEST_CODE", "cleaned")
    start_worker()
    decide("d-new", manager, approved=True)
    assert scheduler.wait_completion("d-new", timeout=30)["budget"] == "check-budget ok"
    assert [finished(old, s) for s in ("prepare", "check-budget", "provision")] == [1, 0, 1]
    assert [finished(new, s) for s in ("prepare", "check-budget", "provision")] == [1, 1, 1]
    nothing_failed()


def test_a_mismatch_blocks_and_the_fixed_deploy_resumes_it_with_its_decisions(
    scheduler, tmp_path: Path, start_worker, manager, monkeypatch
):
    """Code that adds a step before the approval, unpatched: d-1, decided, blocks; d-2, woken,
    blocks with its request open and is decided while blocked. The worker of the fixed (patched)
    deploy retries both once at start-up; both complete with their decisions."""
    log = str(tmp_path / "steps.log")
    jobs = {e: Job(log=log, name=e) for e in ("d-1", "d-2")}
    monkeypatch.setenv("ZART_TEST_CODE", "v1")
    v1 = start_worker()
    for execution_id, job in jobs.items():
        scheduler.start(execution_id, "deploy-approval", job)
    wait_until(lambda: parked(*jobs), what="v1 to park both on their approvals")
    assert v1.terminate() == 0

    monkeypatch.setenv("ZART_TEST_CODE", "unpatched")
    bad = start_worker()
    decide("d-1", manager, approved=True, comment="before the block")
    wait_until(lambda: status("d-1") == "blocked", what="d-1 to block")
    error = Execution.objects.get(pk="d-1").error
    assert "step 'check-budget' at position 1" in error and "zart_django.patched(" in error
    Execution.objects.filter(pk="d-2").update(
        scheduled_at=Execution.objects.get(pk="d-2").created_at
    )
    wait_until(lambda: status("d-2") == "blocked", what="d-2, woken, to block")
    decide("d-2", manager, approved=False, comment="while blocked")
    assert bad.terminate() == 0
    assert bad.output().count("ERROR execution d-1: blocked:") == 1  # held, not replayed in a loop
    assert status("d-2") == "blocked"  # the decision is kept for the fixed code

    monkeypatch.setenv("ZART_TEST_CODE", "patched")
    fixed = start_worker()
    first = scheduler.wait_completion("d-1", timeout=30)
    second = scheduler.wait_completion("d-2", timeout=30)
    assert (first["approved"], first["budget"]) == (True, None)
    assert (second["approved"], second["budget"]) == (False, None)
    assert fixed.output().count("retrying it once") == 2
    for job in jobs.values():
        assert [finished(job, s) for s in ("prepare", "check-budget")] == [1, 0]
    assert [finished(jobs[e], "provision") for e in ("d-1", "d-2")] == [1, 0]
    assert not StepResult.objects.filter(kind="patch").exists()  # old histories: no marker
    nothing_failed()


def test_in_a_rolling_deploy_a_worker_without_a_task_leaves_it_to_one_that_has_it(
    scheduler, tmp_path: Path, start_worker, monkeypatch
):
    log = str(tmp_path / "steps.log")
    new_ids = [f"roll-{n}" for n in range(20)]
    for execution_id in new_ids:
        scheduler.start(execution_id, "deploy-new", Job(log=log, name=execution_id))
    monkeypatch.setenv("ZART_TEST_WORKFLOW_MODULES", "tests.workflows")
    old = start_worker("--concurrency", "4", "--batch-size", "4")
    known = [f"known-{n}" for n in range(4)]
    for execution_id in known:  # due after the new task's executions: the old worker passes them
        scheduler.start(execution_id, "no-input")
    wait_until(
        lambda: all(status(e) == "completed" for e in known), what="the old worker's own work"
    )
    assert all(status(e) == "pending" for e in new_ids)
    assert not StepResult.objects.filter(execution_id__in=new_ids).exists()
    assert old.claims() == len(known)

    monkeypatch.delenv("ZART_TEST_WORKFLOW_MODULES")
    new = start_worker("--concurrency", "4", "--batch-size", "4")
    wait_until(
        lambda: all(status(e) == "completed" for e in new_ids),
        timeout=60,
        what="the new worker to run the new task's executions",
    )
    assert new.claims() == len(new_ids) and old.claims() == len(known)
    assert old.proc.poll() is None  # still running beside it, as in a rolling deploy
    for execution_id in new_ids:
        job = Job(log=log, name=execution_id)
        assert [finished(job, s) for s in ("prepare", "provision")] == [1, 1]
    nothing_failed()

"""Many workers on one PostgreSQL database: push wake-ups, no double execution."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.db import connection, connections

from tests.conftest import wait_until
from tests.workflows import Approval, Job, lines
from zart_django import ExecutionAlreadyExists, clock
from zart_django.models import Execution, StepResult

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("many-worker tests need PostgreSQL (SQLite serialises writers)")


@pytest.mark.timeout(60)
def test_offer_event_wakes_a_parked_execution_without_waiting_for_a_poll(
    scheduler, job, start_worker
):
    start_worker("--poll-interval", "600")
    scheduler.start("p-1", "three-steps", job)
    wait_until(lambda: Execution.objects.get(pk="p-1").status == "waiting", timeout=20)
    scheduler.offer_event("p-1", "go", Approval(True, "Push"))
    assert scheduler.wait_completion("p-1", timeout=20)["results"][2] == "third ok by Push"


@pytest.mark.timeout(300)
def test_four_workers_thousand_approvals_each_step_once(scheduler, tmp_path, start_worker):
    log = str(tmp_path / "steps.log")
    gate = Path(f"{log}.hold-first")  # claimed executions wait here until every worker claimed
    gate.touch()
    ids = [f"m-{n}" for n in range(1000)]
    for execution_id in ids:
        scheduler.start(execution_id, "three-steps", Job(log=log, name=execution_id))
    workers = [start_worker("--concurrency", "4", "--batch-size", "8") for _ in range(4)]
    wait_until(lambda: all(w.claims() for w in workers), what="each worker to claim executions")
    gate.unlink()

    def offer(execution_id: str) -> None:
        try:
            scheduler.offer_event(execution_id, "go", Approval(True, "Bulk"))
        finally:
            connections.close_all()

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(offer, ids))
    wait_until(
        lambda: Execution.objects.filter(status="completed").count() == len(ids),
        timeout=240,
        what="all 1000 executions to complete",
    )
    done = [line for line in lines(log) if " done " in line]
    assert len(done) == 3 * len(ids)
    assert len(set(done)) == len(done), "a finished step body ran twice"
    assert StepResult.objects.count() == 4 * len(ids)


@pytest.mark.timeout(60)
def test_simultaneous_starts_of_one_id_make_one_execution(scheduler, job):
    barrier = threading.Barrier(8)

    def start(n: int) -> str:
        try:
            barrier.wait(timeout=10)
            input_job = job if n % 2 == 0 else Job(log=job.log, name="other")
            try:
                scheduler.start("p-3", "three-steps", input_job)
                return "started"
            except ExecutionAlreadyExists:
                return "refused"
        finally:
            connections.close_all()

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(start, range(8)))
    assert Execution.objects.filter(pk="p-3").count() == 1
    winner = Execution.objects.get(pk="p-3").input["name"]
    expected_started = 4  # the callers whose input matches the stored one
    assert outcomes.count("started") == expected_started, (winner, outcomes)


@pytest.mark.timeout(60)
def test_work_made_due_without_a_notification_is_found_by_polling(scheduler, job, start_worker):
    """Notifications can be lost (a listener reconnecting); the poll still finds due work."""
    scheduler.start("p-4", "sleeper", job)
    start_worker("--poll-interval", "0.2")
    wait_until(lambda: Execution.objects.get(pk="p-4").waiting_on == "sleep:nap", what="the nap")
    StepResult.objects.filter(execution_id="p-4", name="nap").update(deadline=clock.now())
    Execution.objects.filter(pk="p-4").update(scheduled_at=clock.now())  # due, no NOTIFY sent
    assert scheduler.wait_completion("p-4", timeout=20) == "rested"

"""Async executions in real worker processes and in a ``Worker`` on a thread: killed (SIGKILL)
inside an async step and inside an async parallel group, stopped (SIGTERM) with async work in
flight, and run without holding a thread while they await. Step bodies log "start X" / "done X"
to a file shared by processes, so a test counts how often each ran."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from tests import async_workflows
from tests.conftest import wait_until
from tests.workflows import Approval, Job, lines
from zart_django import Worker, default_registry
from zart_django.models import Execution, StepResult

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(240)]


def count(job: Job, line: str) -> int:
    return lines(job.log).count(f"{job.name} {line}")


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def hold(job: Job, point: str) -> Path:
    path = Path(f"{job.log}.hold-{point}")
    path.touch()
    return path


def completed(execution_id: str) -> int:
    return StepResult.objects.filter(execution_id=execution_id, status="completed").count()


def test_a_worker_killed_inside_an_async_step_resumes_it_and_runs_no_finished_step_again(
    scheduler, job, start_worker
):
    gate = hold(job, "a-second")
    scheduler.start_for(async_workflows.async_three_steps, "aw-kill", job)
    worker = start_worker()
    wait_until(lambda: count(job, "start a-second") == 1, what="the second async step to start")
    worker.kill()
    assert (count(job, "done a-first"), count(job, "done a-second")) == (1, 0)
    gate.unlink()
    start_worker()  # reclaims once the dead worker's lease expires
    wait_until(lambda: status("aw-kill") == "waiting", what="the wait for 'go'")
    scheduler.offer_event("aw-kill", "go", Approval(True, "Kim"))
    output = scheduler.wait_completion("aw-kill", timeout=60)
    assert output["results"] == ["a-first ok", "a-second ok", "a-plain ok by Kim"]
    assert Execution.objects.get(pk="aw-kill").recoveries == 1
    assert [count(job, f"start {s}") for s in ("a-first", "a-second", "a-plain")] == [1, 2, 1]
    assert [count(job, f"done {s}") for s in ("a-first", "a-second", "a-plain")] == [1, 1, 1]


def test_a_worker_killed_mid_async_group_runs_only_the_unfinished_members(
    scheduler, job, start_worker
):
    job.items = list(range(6))
    gates = [hold(job, f"a-price {n}") for n in (4, 5)]
    scheduler.start_for(async_workflows.async_fan_out, "aw-group", job)
    worker = start_worker()
    wait_until(
        lambda: completed("aw-group") == 5 and count(job, "start a-price 5") == 1,
        what="members 0-3 and the plain one checkpointed while 4 and 5 run",
    )
    worker.kill()
    for gate in gates:
        gate.unlink()
    start_worker()
    assert scheduler.wait_completion("aw-group", timeout=60) == [0, 10, 20, 30, 40, 50, 9, 4]
    assert [count(job, f"start a-price {n}") for n in range(6)] == [1, 1, 1, 1, 2, 2]
    assert [count(job, f"done a-price {n}") for n in range(6)] == [1] * 6
    assert count(job, "square 3") == 1


def test_an_async_step_longer_than_the_lease_keeps_it_by_heartbeat(scheduler, job, start_worker):
    """The lease is 2 s in the tests: a body held for three leases is not taken from its worker."""
    gate = hold(job, "a-second")
    scheduler.start_for(async_workflows.async_three_steps, "aw-long", job)
    start_worker()
    start_worker()  # would take the execution over if its lease expired
    wait_until(lambda: count(job, "start a-second") == 1, what="the second async step to start")
    time.sleep(6)
    gate.unlink()
    wait_until(lambda: status("aw-long") == "waiting", what="the wait for 'go'")
    assert Execution.objects.get(pk="aw-long").recoveries == 0
    assert (count(job, "start a-second"), count(job, "done a-second")) == (1, 1)


def test_sigterm_lets_the_async_executions_in_flight_finish(scheduler, tmp_path, start_worker):
    log = str(tmp_path / "term.log")
    jobs = {f"aw-term-{n}": Job(log=log, name=f"aw-term-{n}") for n in range(3)}
    gate = hold(Job(log=log), "a-second")
    for execution_id, job in jobs.items():
        scheduler.start_for(async_workflows.async_three_steps, execution_id, job)
    worker = start_worker("--concurrency", "3")
    wait_until(
        lambda: all(count(job, "start a-second") for job in jobs.values()),
        what="three async executions inside their second step",
    )
    worker.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM received" in worker.output(), what="the worker to see SIGTERM")
    gate.unlink()
    assert worker.proc.wait(timeout=30) == 0
    assert [status(execution_id) for execution_id in jobs] == ["waiting"] * 3


def test_async_executions_await_without_holding_a_thread(scheduler, tmp_path):
    """Four async executions held inside a step at once, on a worker of concurrency 4: none
    holds a pool thread (the pool starts none), and the event loop runs them all."""
    log = str(tmp_path / "threads.log")
    jobs = {f"aw-thread-{n}": Job(log=log, name=f"aw-thread-{n}") for n in range(4)}
    gate = hold(Job(log=log), "a-first")
    for execution_id, job in jobs.items():
        scheduler.start_for(async_workflows.async_three_steps, execution_id, job)
    worker = Worker(default_registry, concurrency=4, poll_interval=0.02)
    runner = threading.Thread(target=run_then_close, args=(worker,), name="test-worker")
    runner.start()
    try:
        wait_until(
            lambda: all(count(job, "start a-first") for job in jobs.values()),
            what="four async executions inside their first step",
        )
        names = [thread.name for thread in threading.enumerate()]
        assert not [name for name in names if name.startswith("zart-worker")], names
        assert names.count("zart-async") == 1
    finally:
        gate.unlink()
        wait_until(
            lambda: all(status(execution_id) == "waiting" for execution_id in jobs),
            what="the four to park",
        )
        worker.stop()
        runner.join(timeout=30)
    assert not runner.is_alive()
    assert "zart-async" not in [thread.name for thread in threading.enumerate()]


def test_a_thousand_parked_async_executions_resume_on_one_worker(scheduler):
    """1,000 async executions park on a worker, then their events arrive: all resume and
    finish, at most ``concurrency`` at a time on one event loop; the figures are printed."""
    ids = [f"aw-many-{n}" for n in range(1000)]
    for n, execution_id in enumerate(ids):
        scheduler.start_for(async_workflows.async_parked, execution_id, n)
    worker = Worker(default_registry, concurrency=16, poll_interval=0.02)
    runner = threading.Thread(target=run_then_close, args=(worker,), name="test-worker")
    started = time.monotonic()
    runner.start()
    try:
        waiting = Execution.objects.filter(pk__in=ids, status="waiting")
        wait_until(lambda: waiting.count() == 1000, timeout=100, what="all 1,000 to park")
        parked = time.monotonic()
        for execution_id in ids:
            scheduler.offer_event(execution_id, "go", 1)
        done = Execution.objects.filter(pk__in=ids, status="completed")
        wait_until(lambda: done.count() == 1000, timeout=100, what="all 1,000 to resume")
        resumed = time.monotonic()
    finally:
        worker.stop()
        runner.join(timeout=30)
    outputs = sorted(output for (output,) in done.values_list("output"))
    assert outputs == list(range(1, 1001))
    print(
        f"\n1,000 async executions on {connection.vendor}: parked in {parked - started:.1f}s,"
        f" offered and resumed in {resumed - parked:.1f}s (concurrency 16)"
    )


def run_then_close(worker: Worker) -> None:
    try:
        worker.run()
    finally:
        connection.close()

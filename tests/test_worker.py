"""Real worker processes, killed (SIGKILL), stalled (SIGSTOP) or stopped (SIGTERM) at the bad
moments: nothing is lost and no finished step body runs twice. Step bodies log "start X" /
"done X" lines to a file shared by processes."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import connection

from tests.conftest import ROOT, WorkerProcess, subprocess_env, wait_until
from tests.workflows import Approval, Job, lines
from zart_django import DurableScheduler, schedules
from zart_django.models import Execution, StepResult

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def recorded(execution_id: str) -> dict[str, str]:
    rows = StepResult.objects.filter(execution_id=execution_id)
    return {row.name: row.status for row in rows}


def hold(job: Job, point: str) -> Path:
    path = Path(f"{job.log}.hold-{point}")
    path.touch()
    return path


def logged(job: Job, line: str) -> bool:
    return f"{job.name} {line}" in lines(job.log)


def count(job: Job, line: str) -> int:
    return lines(job.log).count(f"{job.name} {line}")


def recoveries(execution_id: str) -> int:
    return Execution.objects.get(pk=execution_id).recoveries


def assert_each_step_finished_once(job: Job) -> None:
    for name in ("first", "second", "third"):
        assert count(job, f"done {name}") == 1, lines(job.log)


def finish(scheduler: DurableScheduler, execution_id: str, reviewer: str = "Carol") -> dict:
    if status(execution_id) != "completed":
        wait_until(lambda: status(execution_id) == "waiting", what="the wait for 'go'")
        scheduler.offer_event(execution_id, "go", Approval(True, reviewer))
    return scheduler.wait_completion(execution_id, timeout=30)


def test_killed_inside_a_step_body(scheduler, job, start_worker):
    gate = hold(job, "second")
    scheduler.start("k-1", "three-steps", job)
    worker = start_worker()
    wait_until(lambda: logged(job, "start second"), what="second step to start")
    worker.kill()
    assert recorded("k-1") == {"first": "completed"}
    gate.unlink()
    start_worker()  # reclaims once the dead worker's lease expires
    output = finish(scheduler, "k-1")
    assert output["results"] == ["first ok", "second ok", "third ok by Carol"]
    assert recoveries("k-1") == 1
    assert count(job, "start first") == 1
    assert count(job, "start second") == 2  # the killed attempt, then the one that finished
    assert_each_step_finished_once(job)


def test_killed_between_the_event_and_step_3_resumes_from_the_event(scheduler, job, start_worker):
    """The reference page's promise: the worker dies inside step 3, after it received the event;
    a new worker resumes from the recorded event and runs step 3 with its payload."""
    gate = hold(job, "third")
    scheduler.start("k-2", "three-steps", job)
    worker = start_worker()
    wait_until(lambda: status("k-2") == "waiting", what="the wait for 'go'")
    scheduler.offer_event("k-2", "go", Approval(True, "Dana"))
    wait_until(lambda: logged(job, "start third"), what="the worker to be inside step 3")
    assert recorded("k-2") == {"first": "completed", "second": "completed", "go": "completed"}
    worker.kill()
    gate.unlink()
    start_worker()
    output = scheduler.wait_completion("k-2", timeout=30)
    assert output["results"][2] == "third ok by Dana"
    assert recoveries("k-2") == 1
    assert count(job, "start third") == 2  # the killed attempt, then the one that finished
    assert_each_step_finished_once(job)


def test_killed_while_parked(scheduler, job, start_worker):
    scheduler.start("k-3", "three-steps", job)
    worker = start_worker()
    wait_until(lambda: status("k-3") == "waiting", what="the wait for 'go'")
    worker.kill()
    scheduler.offer_event("k-3", "go", Approval(True, "Erin"))
    start_worker()
    output = scheduler.wait_completion("k-3", timeout=30)
    assert output["results"][2] == "third ok by Erin"
    assert_each_step_finished_once(job)


def test_sigterm_finishes_work_in_flight_stops_claiming_and_exits_cleanly(
    scheduler, tmp_path, start_worker
):
    log = str(tmp_path / "term.log")
    jobs = {f"t-{n}": Job(log=log, name=f"t-{n}") for n in range(6)}
    gate = hold(Job(log=log), "second")
    for execution_id, job in jobs.items():
        scheduler.start(execution_id, "three-steps", job)
    worker = start_worker("--concurrency", "2", "--batch-size", "2")

    def in_step() -> list[str]:
        return [e for e, job in jobs.items() if logged(job, "start second")]

    wait_until(lambda: len(in_step()) == 2, what="two executions inside their second step")
    worker.proc.send_signal(signal.SIGTERM)
    wait_until(lambda: "SIGTERM received" in worker.output(), what="the worker to see SIGTERM")
    gate.unlink()  # the two in flight finish; four are due and the worker has free slots
    assert worker.proc.wait(timeout=30) == 0
    assert "stopped" in worker.output()
    in_flight = in_step()
    for execution_id in in_flight:
        assert status(execution_id) == "waiting"
        assert recorded(execution_id) == {
            "first": "completed",
            "second": "completed",
            "go": "waiting",
        }
    assert worker.claims() == len(in_flight) == 2
    for execution_id in jobs.keys() - set(in_flight):
        assert status(execution_id) == "pending"
        assert recorded(execution_id) == {}
    assert sum(1 for line in lines(log) if line.endswith(" start first")) == 2


def test_two_workers_racing_run_each_step_once(scheduler, tmp_path, start_worker):
    ids = [f"race-{n}" for n in range(30)]
    log = str(tmp_path / "race.log")
    gate = hold(Job(log=log), "first")  # claimed executions wait here until both workers claimed
    for execution_id in ids:
        scheduler.start(execution_id, "three-steps", Job(log=log, name=execution_id))
        scheduler.offer_event(execution_id, "go", Approval(True, "Racer"))
    workers = [start_worker("--concurrency", "4", "--batch-size", "3") for _ in range(2)]
    wait_until(lambda: all(w.claims() for w in workers), what="each worker to claim executions")
    gate.unlink()
    wait_until(
        lambda: Execution.objects.filter(status="completed").count() == len(ids),
        timeout=60,
        what="every execution to complete",
    )
    for execution_id in ids:
        assert_each_step_finished_once(Job(log=log, name=execution_id))
    assert not Execution.objects.filter(recoveries__gt=0).exists(), "a live claim was taken"
    assert sum(w.claims() for w in workers) == len(ids)  # each execution claimed once


def test_worker_survives_its_connections_being_cut(scheduler, job, start_worker):
    """What a database restart looks like to a worker: every connection it holds is dropped."""
    if connection.vendor != "postgresql":
        pytest.skip("cutting a worker's connections needs PostgreSQL")
    scheduler.start("k-5", "three-steps", job)
    worker = start_worker()
    wait_until(lambda: status("k-5") == "waiting", what="the wait for 'go'")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert cursor.fetchall(), "the worker had no connection to cut"
    wait_until(lambda: "database unavailable" in worker.output(), what="the worker to notice")
    scheduler.offer_event("k-5", "go", Approval(True, "Frank"))
    assert scheduler.wait_completion("k-5", timeout=30)["results"][2] == "third ok by Frank"
    assert_each_step_finished_once(job)


def test_once_runs_what_is_due_then_exits(scheduler, job, start_worker):
    scheduler.start("k-6", "three-steps", job)
    worker = start_worker("--once")
    assert worker.proc.wait(timeout=30) == 0
    assert status("k-6") == "waiting"
    assert recorded("k-6") == {"first": "completed", "second": "completed", "go": "waiting"}


def test_sigint_stops_like_sigterm(job, start_worker):
    worker = start_worker()
    wait_until(lambda: "started" in worker.output(), what="the worker to start")
    worker.proc.send_signal(2)
    assert worker.proc.wait(timeout=30) == 0
    assert "SIGINT received" in worker.output()


SIGTERM_INSIDE_THE_WAIT = """
import os, signal, sys
import django
django.setup()
from django.core.management import call_command

fired = []


def inside_the_loops_wait(frame):
    below = None
    while frame is not None:
        if frame.f_code.co_name == "_loop":
            return below is not None and below.f_code.co_name == "wait"
        below, frame = frame, frame.f_back
    return False


def hook(frame, event, arg):
    if not fired and event in ("return", "c_return") and inside_the_loops_wait(frame):
        fired.append(event)
        os.kill(os.getpid(), signal.SIGTERM)


sys.setprofile(hook)
call_command("run_zart_worker", "--poll-interval", "0.05")
sys.setprofile(None)
print("fired" if fired else "never fired", flush=True)
"""


def test_a_sigterm_that_interrupts_the_claim_loops_wait_stops_the_worker(tmp_path):
    """The SIGTERM arrives while the main thread is inside the claim loop's wait, at its first
    return from a call there (with a ``threading.Event``, just after it took the event's lock,
    which the handler's ``stop`` then waited for forever): the worker stops and exits."""
    done = subprocess.run(
        [sys.executable, "-c", SIGTERM_INSIDE_THE_WAIT],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "SIGTERM received" in output and "stopped" in output
    assert done.stdout.splitlines()[-1] == "fired", output


def stop_just_after_a_heartbeat(worker: WorkerProcess, execution_id: str) -> None:
    """SIGSTOP the worker right after it renewed its lease, so that it is not stopped in the
    middle of a write (holding a lock the other worker would wait on)."""
    renewed = Execution.objects.get(pk=execution_id).scheduled_at
    wait_until(
        lambda: Execution.objects.get(pk=execution_id).scheduled_at != renewed,
        what="a heartbeat",
    )
    worker.stop()


def test_a_stalled_worker_loses_its_execution_and_its_late_write_is_rejected(
    scheduler, job, start_worker, monkeypatch
):
    monkeypatch.setenv("ZART_TEST_LEASE", "1")
    gate = hold(job, "second")
    scheduler.start("k-7", "three-steps", job)
    stalled = start_worker("--concurrency", "1")
    wait_until(lambda: logged(job, "start second"), what="second step to start")
    stop_just_after_a_heartbeat(stalled, "k-7")  # it stalls past its lease, holding the step
    gate.unlink()
    rescuer = start_worker()
    wait_until(lambda: status("k-7") == "waiting", what="the other worker to take over")
    assert recoveries("k-7") == 1
    assert rescuer.claims() == 1
    stalled.resume()  # it wakes, finishes the body, tries to checkpoint
    wait_until(lambda: "lease lost" in stalled.output(), what="the stale write refused")
    assert count(job, "done second") == 2  # both bodies ran ...
    assert StepResult.objects.filter(execution_id="k-7", name="second").count() == 1  # one landed
    assert status("k-7") == "waiting"  # the new owner's progress stands
    scheduler.offer_event("k-7", "go", Approval(True, "After"))
    assert scheduler.wait_completion("k-7", timeout=30)["results"][2] == "third ok by After"
    assert count(job, "done first") == count(job, "done third") == 1


def test_an_execution_that_kills_its_worker_every_time_fails_after_max_recoveries(
    scheduler, job, start_worker, monkeypatch
):
    monkeypatch.setenv("ZART_TEST_LEASE", "1")
    monkeypatch.setenv("ZART_TEST_MAX_RECOVERIES", "2")
    scheduler.start("k-8", "kills-its-worker", job)
    for _ in range(3):  # the first run and MAX_RECOVERIES reclaims, each killing its worker
        worker = start_worker("--concurrency", "1")
        wait_until(
            lambda w=worker: w.proc.poll() is not None or status("k-8") == "failed",
            what="the worker to die or the execution to fail",
        )
        assert (worker.proc.returncode, status("k-8")) == (-signal.SIGKILL, "running")
    survivor = start_worker("--concurrency", "1")  # the third reclaim: it gives up instead
    wait_until(lambda: status("k-8") == "failed", what="the execution to fail")
    execution = Execution.objects.get(pk="k-8")
    assert "its worker was lost 3 times" in execution.error
    assert execution.recoveries == 3
    assert count(job, "start fatal") == 3
    assert count(job, "done first") == 1
    assert survivor.proc.poll() is None


def test_killed_inside_an_occurrence_of_a_schedule(tmp_path, monkeypatch, start_worker):
    """A worker killed inside a scheduled occurrence: another one finishes it without running a
    finished step again, skips the ticks that pass meanwhile (overlap "skip"), goes on with the
    schedule, and no tick is started twice."""
    log = tmp_path / "schedule.log"
    monkeypatch.setenv("ZART_TEST_WORKFLOW_MODULES", "tests.schedule_workflows")
    monkeypatch.setenv("ZART_TEST_SCHEDULE_LOG", str(log))
    gate = Path(f"{log}.hold-second")
    gate.touch()
    occurrences = Execution.objects.filter(task_name="every-two-seconds")
    worker = start_worker()
    wait_until(lambda: any("start second" in line for line in lines(log)), what="an occurrence")
    worker.kill()
    (killed,) = occurrences.values_list("pk", flat=True)
    assert recorded(killed) == {"first": "completed"}
    gate.unlink()
    second_worker = start_worker()
    wait_until(lambda: status(killed) == "completed", what="the killed occurrence to finish")
    wait_until(lambda: occurrences.filter(status="completed").count() >= 3, what="later ticks")
    schedules.pause("every-two-seconds")
    assert second_worker.terminate() == 0
    done = lines(log)
    assert done.count(f"{killed} start first") == 1
    # the killed attempt, then the one that finished:
    assert done.count(f"{killed} start second") == 2
    for execution_id in occurrences.values_list("pk", flat=True):
        assert done.count(f"{execution_id} done first") <= 1
        assert done.count(f"{execution_id} done second") <= 1
    started = [
        found
        for w in (worker, second_worker)
        for found in re.findall(r"execution (\S+): started by its schedule", w.output())
    ]
    assert sorted(started) == sorted(occurrences.values_list("pk", flat=True))
    assert len(set(started)) == len(started)
    finished = Execution.objects.get(pk=killed).finished_at
    assert not occurrences.filter(created_at__gt=started_at(killed), created_at__lt=finished)


def started_at(execution_id: str):
    return Execution.objects.get(pk=execution_id).created_at

"""Fault injection: real worker processes, real databases, faults at the bad moments.

Connections cut (``pg_terminate_backend``) during a claim, a step, a checkpoint, a read of the
inbox, a park and an offer; a private PostgreSQL cluster restarted under load; workers SIGKILLed
and SIGSTOPped; worker clocks 60 s ahead and behind; a project's plain
SQLite settings under concurrent writes. Every scenario asserts that each execution completed,
that no finished step body ran twice and that nothing failed because of the database; the
figures (executions, cuts, recoveries, longest stall after the fault) are printed at the end.

A cut is caught in the middle of a statement by holding a lock the statement needs, waiting until
the worker's connection is blocked on it, and terminating that connection. Workers in the cut
scenarios run with a 30 s lease: waiting for a lease to expire would time the scenario out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.db import InterfaceError, OperationalError, connection

from tests import services
from tests.conftest import FAULT_FIGURES, ROOT, WorkerProcess, wait_until
from tests.workflows import Approval, Job, lines
from zart_django import DurableScheduler, EventAlreadyDelivered, clock, durable, store
from zart_django.errors import LeaseLost
from zart_django.models import Event, Execution, StepResult
from zart_django.registry import default_registry
from zart_django.testing import run_until_idle
from zart_django.worker import Worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]

LONG_LEASE = {"ZART_TEST_LEASE": "30"}
EXECUTIONS = Execution._meta.db_table
STEPS = StepResult._meta.db_table
EVENTS = Event._meta.db_table


# --- what a scenario checks and reports ----------------------------------------------------


def logged(job: Job, line: str) -> bool:
    return f"{job.name} {line}" in lines(job.log)


def recorded(execution_id: str) -> dict[str, str]:
    return {s.name: s.status for s in StepResult.objects.filter(execution_id=execution_id)}


def hold(job: Job, point: str) -> Path:
    """Make the job's step bodies block at ``point`` until the returned file is removed."""
    path = Path(f"{job.log}.hold-{point}")
    path.touch()
    return path


def into_second_step(
    scheduler: DurableScheduler, job: Job, execution_id: str, start: Callable[[], WorkerProcess]
) -> tuple[Path, WorkerProcess]:
    """Start three-steps as ``execution_id`` and a worker with ``start``; return once the worker
    is inside the second step's body, held there until the returned gate file is removed."""
    gate = hold(job, "second")
    scheduler.start(execution_id, "three-steps", job)
    worker = start()
    wait_until(lambda: logged(job, "start second"), what="the second step to start")
    return gate, worker


def stall(condition: Callable[[], object], what: str, timeout: float = 15) -> float:
    """Seconds until ``condition`` holds (a figure, never asserted); fails after ``timeout``."""
    started = time.monotonic()
    wait_until(condition, timeout=timeout, what=what)
    return time.monotonic() - started


def go(scheduler: DurableScheduler, *ids: str) -> None:
    """Offer "go" to each execution once it waits for it; wait until all completed."""
    for execution_id in ids:
        wait_until(
            lambda e=execution_id: Execution.objects.get(pk=e).status == "waiting",
            what=f"{execution_id} to wait for 'go'",
        )
        scheduler.offer_event(execution_id, "go", Approval(True, "Faulty"))
    for execution_id in ids:
        scheduler.wait_completion(execution_id, timeout=20)


def survived(
    scenario: str, log: str, ids: list[str], cuts: int, stalled: float, stale_body: str = ""
) -> int:
    """Assert every execution completed and no finished body ran twice (but ``stale_body``, the
    line of a stalled worker's body whose result was refused); record the figures. Returns the
    executions' recoveries (reclaims from lost workers)."""
    executions = Execution.objects.filter(pk__in=ids)
    assert sorted(e.status for e in executions) == ["completed"] * len(ids), [
        (e.id, e.status, e.error) for e in executions
    ]
    done = [line for line in lines(log) if " done " in line]
    if stale_body:
        done.remove(stale_body)
    assert len(done) == len(set(done)), f"a finished step body ran twice: {done}"
    recoveries = sum(e.recoveries for e in executions)
    FAULT_FIGURES.append(
        {
            "scenario": f"{scenario} ({connection.vendor})",
            "executions": len(ids),
            "cuts": cuts,
            "recoveries": recoveries,
            "max stall s": stalled,
        }
    )
    return recoveries


def start_with(start_worker: Callable[..., WorkerProcess], env: dict[str, str], *args: str):
    """A worker process started with ``env`` added to its environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        return start_worker(*args)


def no_database_failures(*workers: WorkerProcess) -> None:
    for worker in workers:
        output = worker.output()
        assert "Traceback" not in output, output
        assert "failed" not in output.replace("heartbeat failed", ""), output


# --- cutting connections (PostgreSQL) -------------------------------------------------------


class Cutter:
    """The test's own connections to the test database: one holds locks in an open transaction
    (so a worker's statement blocks in the middle), one terminates other connections."""

    def __init__(self) -> None:
        params = connection.get_connection_params()
        self.admin = psycopg.connect(**params, autocommit=True)
        self.holder = psycopg.connect(**params)
        connection.ensure_connection()
        self.spared = [
            self.admin.info.backend_pid,
            self.holder.info.backend_pid,
            connection.connection.info.backend_pid,
        ]
        self.cuts = 0

    def cut_all(self) -> int:
        """Terminate every other connection to the test database (the workers' ones)."""
        cut = self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> ALL(%s)",
            [self.spared],
        ).fetchall()
        assert cut, "there was no connection to cut"
        self.cuts += len(cut)
        return len(cut)

    def hold(self, sql: str, params: list[Any] | None = None) -> None:
        self.holder.execute(sql, params)

    def let_go(self) -> None:
        self.holder.rollback()

    def cut_blocked(self, statement: str) -> None:
        """Wait until another connection is blocked on a held lock in a statement that matches
        ``statement`` (a LIKE pattern), and terminate it there."""

        def blocked() -> list[tuple[int]]:
            return self.admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE %s AND pid <> ALL(%s)",
                [statement, self.spared],
            ).fetchall()

        wait_until(blocked, timeout=15, what=f"a statement like {statement!r} to block")
        for (pid,) in blocked():
            self.admin.execute("SELECT pg_terminate_backend(%s)", [pid])
            self.cuts += 1

    def close(self) -> None:
        self.holder.close()
        self.admin.close()


@pytest.fixture
def long_lease(start_worker) -> Callable[..., WorkerProcess]:
    """Starts workers with a 30 s lease: a run that waited for a lease would time the test out."""
    return lambda *args: start_with(start_worker, LONG_LEASE, *args)


@pytest.fixture
def cutter() -> Iterator[Cutter]:
    if connection.vendor != "postgresql":
        pytest.skip("cutting connections needs a database server (PostgreSQL)")
    cutter = Cutter()
    yield cutter
    cutter.close()


def test_cut_while_a_step_runs(scheduler, job, long_lease, cutter):
    """The checkpoint after the body meets a dead connection: it reconnects and writes the result
    it kept in memory, with the same lease; the body does not run again."""
    gate, _ = into_second_step(scheduler, job, "f-step", long_lease)
    cutter.cut_all()
    gate.unlink()
    stalled = stall(lambda: recorded("f-step").get("second") == "completed", "the checkpoint")
    go(scheduler, "f-step")
    assert survived("cut while a step runs", job.log, ["f-step"], cutter.cuts, stalled) == 0


def test_cut_during_a_checkpoint(scheduler, job, long_lease, cutter):
    gate, _ = into_second_step(scheduler, job, "f-checkpoint", long_lease)
    cutter.hold(f"SELECT 1 FROM {EXECUTIONS} WHERE id = %s FOR UPDATE", ["f-checkpoint"])
    gate.unlink()
    cutter.cut_blocked("WITH owned AS%")
    cutter.let_go()
    stalled = stall(lambda: recorded("f-checkpoint").get("second") == "completed", "the retry")
    go(scheduler, "f-checkpoint")
    assert survived("cut during a checkpoint", job.log, ["f-checkpoint"], cutter.cuts, stalled) == 0


def test_a_checkpoint_whose_commit_landed_but_whose_answer_was_lost(scheduler, job):
    """The retry of a checkpoint whose first attempt committed takes the stored row: no second
    row, no unique-constraint error. A claim that lost the execution is refused either way."""
    scheduler.start("f-lost", "three-steps", job)
    (claim,) = store.claim_due("first-owner", 1, lease=30, tasks=["three-steps"])
    row = StepResult(
        execution_id="f-lost",
        position=0,
        name="first",
        status="completed",
        result="first ok",
        started_at=clock.now(),
    )
    store.checkpoint(claim, row, 30)  # committed ...
    stored, row.pk = row.pk, None  # ... but the answer never came back
    store.checkpoint(claim, row, 30)  # the retry
    assert row.pk == stored
    assert StepResult.objects.filter(execution_id="f-lost").count() == 1
    Execution.objects.filter(pk="f-lost").update(lease_token="someone-else")
    row.pk = None
    with pytest.raises(LeaseLost):
        store.checkpoint(claim, row, 30)


@durable("meets-a-database-error")
def meets_a_database_error() -> str:
    """Fails a query on the database every time it runs: its own connection terminated on
    PostgreSQL, a missing table on SQLite (both an ``OperationalError``)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        else:
            cursor.execute("SELECT * FROM zart_no_such_table")
    return "unreachable"


def test_a_database_error_that_persists_is_handed_back_not_spun_on_or_failed(scheduler, settings):
    """Each run is handed back due a poll interval later, so ``run_until_idle`` (which would
    give up after 1,000 rounds of an execution due at once) returns after one run. The interval
    is long here so that a slow machine cannot reach the due time before the check."""
    settings.ZART = {**settings.ZART, "POLL_INTERVAL": 60}
    scheduler.start("f-persists", "meets-a-database-error")
    assert run_until_idle() == 1
    connection.close()
    execution = Execution.objects.get(pk="f-persists")
    assert (execution.status, execution.recoveries, execution.error) == ("pending", 0, "")
    assert execution.scheduled_at > clock.now()


def test_cut_while_reading_the_inbox_cannot_be_swallowed(scheduler, job, long_lease, cutter):
    """``swallower`` wraps its wait in ``except Exception``: the database error must not reach
    it (it would return "swallowed the wait"); the execution is handed back and waits again."""
    cutter.hold(f"LOCK TABLE {EVENTS} IN ACCESS EXCLUSIVE MODE")
    scheduler.start("f-inbox", "swallower", job)
    worker = long_lease()
    cutter.cut_blocked(f"SELECT%{EVENTS}%")
    cutter.let_go()
    stalled = stall(lambda: Execution.objects.get(pk="f-inbox").status == "waiting", "the wait")
    scheduler.offer_event("f-inbox", "go", Approval(True, "Faulty"))
    assert scheduler.wait_completion("f-inbox", timeout=20) == "woke"
    assert "handing it back" in worker.output()
    assert survived("cut while reading the inbox", job.log, ["f-inbox"], cutter.cuts, stalled) == 0


def test_cut_while_parking(scheduler, job, long_lease, cutter):
    """A row the test holds (uncommitted) at the wait's position blocks the park's insert."""
    gate, _ = into_second_step(scheduler, job, "f-park", long_lease)
    cutter.hold(
        f"INSERT INTO {STEPS} (execution_id, run, position, name, kind, status, error,"
        " attempts, type_ref, started_at)"
        " VALUES (%s, 1, 2, 'blocker', 'step', 'completed', '', 1, '', now())",
        ["f-park"],
    )
    gate.unlink()
    cutter.cut_blocked(f"INSERT INTO%{STEPS}%")
    cutter.let_go()
    stalled = stall(lambda: Execution.objects.get(pk="f-park").status == "waiting", "the park")
    go(scheduler, "f-park")
    assert survived("cut while parking", job.log, ["f-park"], cutter.cuts, stalled) == 0


def test_cut_during_a_claim(scheduler, job, long_lease, cutter):
    scheduler.start("f-claim", "three-steps", job)
    cutter.hold(f"LOCK TABLE {EXECUTIONS} IN EXCLUSIVE MODE")
    long_lease()
    cutter.cut_blocked("UPDATE%lease_owner%")
    cutter.let_go()
    stalled = stall(lambda: logged(job, "start first"), "the first step after the cut")
    go(scheduler, "f-claim")
    assert survived("cut during a claim", job.log, ["f-claim"], cutter.cuts, stalled) == 0


def test_cut_during_an_offer(scheduler, job, long_lease, cutter):
    """The client's connection is cut inside ``offer_event``: nothing half-stored; offered
    again on a new connection, the event is delivered once."""
    scheduler.start("f-offer", "three-steps", job)
    long_lease()
    wait_until(lambda: Execution.objects.get(pk="f-offer").status == "waiting", what="the wait")
    cutter.hold(f"SELECT 1 FROM {EXECUTIONS} WHERE id = %s FOR UPDATE", ["f-offer"])
    attempts: list[int] = []
    client = threading.Thread(target=lambda: attempts.append(offer_again(scheduler, "f-offer")))
    client.start()
    cutter.cut_blocked("%FOR UPDATE%")
    cutter.let_go()
    client.join(timeout=20)
    assert attempts == [2]
    stalled = stall(lambda: Execution.objects.get(pk="f-offer").status == "completed", "the end")
    assert Event.objects.filter(execution_id="f-offer").count() == 1
    assert survived("cut during an offer", job.log, ["f-offer"], cutter.cuts, stalled) == 0


def offer_again(scheduler: DurableScheduler, execution_id: str) -> int:
    """What a careful client does when its connection is cut: offer again on a new connection
    (``EventAlreadyDelivered`` means the cut attempt had landed). Returns the attempts made."""
    try:
        for attempt in range(1, 4):
            try:
                scheduler.offer_event(execution_id, "go", Approval(True, "Client"))
                return attempt
            except EventAlreadyDelivered:
                return attempt
            except (OperationalError, InterfaceError):
                connection.close()
        raise AssertionError("the offer never went through")
    finally:
        connection.close()


def test_a_worker_whose_connections_were_cut_runs_the_next_executions_at_once(
    scheduler, tmp_path, long_lease, cutter
):
    """Every connection of an idle worker is cut (claim loop, four pool threads, heartbeat,
    listener), as a restart or a proxy's idle timeout does. Each thread notices before its next
    unit of work and reconnects: no run fails and waits out its lease."""
    log = str(tmp_path / "idle.log")
    ids = [f"f-idle-{n}" for n in range(8)]
    for execution_id in ids:
        scheduler.start(execution_id, "three-steps", Job(log=log, name=execution_id))
    worker = long_lease("--concurrency", "4")
    wait_until(
        lambda: Execution.objects.filter(pk__in=ids, status="waiting").count() == len(ids),
        what="every execution to wait",
    )
    cutter.cut_all()
    started = time.monotonic()
    for execution_id in ids:
        scheduler.offer_event(execution_id, "go", Approval(True, "After the cut"))
    for execution_id in ids:
        scheduler.wait_completion(execution_id, timeout=15)
    stalled = time.monotonic() - started
    recoveries = survived("all of an idle worker's connections cut", log, ids, cutter.cuts, stalled)
    assert recoveries == 0
    assert "handing it back" not in worker.output()


# --- lost and stalled workers (both databases) ----------------------------------------------


def test_worker_sigkilled_inside_a_step(scheduler, job, start_worker):
    gate, doomed = into_second_step(scheduler, job, "f-kill", start_worker)
    doomed.kill()
    gate.unlink()
    start_worker()
    stalled = stall(lambda: recorded("f-kill").get("second") == "completed", "the takeover")
    go(scheduler, "f-kill")
    assert survived("worker SIGKILLed inside a step", job.log, ["f-kill"], 0, stalled) == 1


def test_worker_sigstopped_inside_a_step(scheduler, job, start_worker):
    """A stalled worker's body finishes after another worker took over and ran it; only one
    result lands (the stalled one is refused by the lease token)."""
    gate, stalled_worker = into_second_step(scheduler, job, "f-stop", start_worker)
    stalled_worker.stop()
    gate.unlink()
    start_worker()
    stalled = stall(lambda: recorded("f-stop").get("second") == "completed", "the takeover")
    stalled_worker.resume()
    wait_until(lambda: "lease lost" in stalled_worker.output(), what="the late write refused")
    go(scheduler, "f-stop")
    assert (
        lines(job.log).count("job done second") == 2
    )  # the late body ran; its result did not land
    assert StepResult.objects.filter(execution_id="f-stop", name="second").count() == 1
    scenario = "worker SIGSTOPped inside a step"
    assert survived(scenario, job.log, ["f-stop"], 0, stalled, "job done second") == 1


def test_a_worker_whose_heartbeat_is_held_up_keeps_the_execution_it_runs(
    scheduler, job, monkeypatch
):
    """On SQLite the heartbeat queues for the one write lock with every other writer; under load
    it waited 4.8 s for it (the lease: 2 s) while the same worker's claims got the lock ten
    times, and a claim took back the execution the worker was running: the body of its step ran
    twice. Here the heartbeat waits two and a half leases: the worker's claims renew the lease
    meanwhile, so the body runs once and the execution is never reclaimed."""
    lock_granted = threading.Event()
    beat = store.heartbeat

    def held_up(claims: list[store.Claim], lease: float) -> None:
        lock_granted.wait(timeout=30)
        beat(claims, lease)

    monkeypatch.setattr(store, "heartbeat", held_up)
    gate = hold(job, "second")
    scheduler.start("f-late", "three-steps", job)
    worker = Worker(default_registry, concurrency=2, poll_interval=0.02, lease=1)
    runner = threading.Thread(target=run_then_close, args=(worker,), name="test-worker")
    runner.start()
    try:
        wait_until(lambda: logged(job, "start second"), what="the second step to start")
        time.sleep(2.5)  # two and a half leases, no heartbeat; the claim loop polls on
        gate.unlink()
        go(scheduler, "f-late")
    finally:
        gate.unlink(missing_ok=True)
        lock_granted.set()
        worker.stop()
        runner.join(timeout=30)
    assert lines(job.log).count("job start second") == 1
    assert survived("heartbeat held up for 2.5 leases", job.log, ["f-late"], 0, 0.0) == 0


def run_then_close(worker: Worker) -> None:
    try:
        worker.run()
    finally:
        connection.close()


# --- clocks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("skew", ["+60", "-60"])
def test_a_worker_with_a_skewed_clock(skew, scheduler, job, tmp_path, start_worker):
    """A worker whose host clock is a minute off (ZART_TEST_CLOCK_SKEW in tests/settings.py)
    neither steals a live execution (ahead) nor leaves due work alone (behind): leases and due
    times are the database's time. (On SQLite that is the clock of the host all processes share.)
    """
    # A healthy worker that runs f-live and nothing else:
    gate, _ = into_second_step(scheduler, job, "f-live", lambda: start_worker("--concurrency", "1"))
    skewed = start_with(start_worker, {"ZART_TEST_CLOCK_SKEW": skew})
    other = Job(log=str(tmp_path / "other.log"), name="other")
    scheduler.start("f-other", "three-steps", other)
    stalled = stall(lambda: logged(other, "done second"), "the skewed worker to run new work")
    gate.unlink()
    go(scheduler, "f-live", "f-other")
    assert lines(job.log).count("job start second") == 1, "the skewed worker stole f-live"
    assert lines(other.log).count("other done third") == 1
    recoveries = survived(f"worker clock {skew} s", job.log, ["f-live", "f-other"], 0, stalled)
    assert recoveries == 0
    no_database_failures(skewed)


# --- scenarios that need a pytest process of their own (tests/inner_faults.py) --------------


def run_inner(test: str, env: dict[str, str], tmp_path: Path) -> None:
    """Run one test of tests/inner_faults.py in a new pytest process with ``env``; record the
    figures it wrote."""
    figures = tmp_path / "figures.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            f"tests/inner_faults.py::{test}",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env={**os.environ, **env, "ZART_FIGURES_FILE": str(figures)},
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    for line in figures.read_text().splitlines():
        FAULT_FIGURES.append(json.loads(line))


class PrivateCluster:
    """A PostgreSQL cluster of the test's own in a temporary directory, free to restart."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.data = tempfile.mkdtemp(prefix="zart-pg-")
        if self.as_postgres:
            subprocess.run(["chown", "postgres", self.data], check=True)
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

    def pg(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_postgres, f"{self.bindir}/{tool}", *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self.pg("initdb", "-D", self.data, "-A", "trust", "-U", "postgres", "--no-sync")
        options = (
            f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1"
            " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        )
        self.pg("pg_ctl", "-D", self.data, "-l", f"{self.data}/log", "-o", options, "-w", "start")

    def stop(self) -> None:
        subprocess.run(
            [
                *self.as_postgres,
                f"{self.bindir}/pg_ctl",
                "-D",
                self.data,
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
        subprocess.run(["rm", "-rf", self.data], check=False)


@pytest.mark.timeout(90)
def test_database_restart(tmp_path):
    if connection.vendor != "postgresql":
        pytest.skip("a database restart needs a database server (PostgreSQL)")
    services.require("postgres-binaries")  # skipped on a laptop without them, failed in CI
    cluster = PrivateCluster(services.postgres_bindir())
    try:
        cluster.start()
        env = {
            "ZART_DB": "postgres",
            "PGHOST": "127.0.0.1",
            "PGPORT": str(cluster.port),
            "ZART_PRIVATE_PGDATA": cluster.data,
            "ZART_PRIVATE_PGBIN": cluster.bindir,
            **LONG_LEASE,
        }
        run_inner("test_database_restarted_twice", env, tmp_path)
    finally:
        cluster.stop()


@pytest.mark.timeout(90)
def test_plain_sqlite_settings_never_meet_database_is_locked(tmp_path):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's locking only")
    run_inner(
        "test_plain_sqlite_settings", {"ZART_DB": "sqlite", "ZART_SQLITE_PLAIN": "1"}, tmp_path
    )

"""Fault scenarios that need a pytest process of their own, run by tests/test_faults.py:

- ``ZART_PRIVATE_PGDATA``: the test database lives on a private PostgreSQL cluster (this data
  directory, ``ZART_PRIVATE_PGBIN`` its binaries) that the scenario restarts;
- ``ZART_SQLITE_PLAIN``: SQLite with a project's plain settings (see tests/settings.py).

Each appends its figures, as JSON lines, to ``ZART_FIGURES_FILE``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from django.db import connection

from tests.approval_helpers import REQUEST
from tests.conftest import wait_until
from tests.workflows import Approval, Job, lines
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRequest
from zart_django.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(75)]


def report(scenario: str, ids: list[str], cuts: int, stalled: float) -> None:
    """Assert every execution completed and no finished step body ran twice; write the figures."""
    executions = Execution.objects.filter(pk__in=ids)
    assert sorted(e.status for e in executions) == ["completed"] * len(ids), [
        (e.id, e.status, e.error) for e in executions
    ]
    figures = {
        "scenario": f"{scenario} ({connection.vendor})",
        "executions": len(ids),
        "cuts": cuts,
        "recoveries": sum(e.recoveries for e in executions),
        "max stall s": stalled,
    }
    with open(os.environ["ZART_FIGURES_FILE"], "a") as out:
        out.write(json.dumps(figures) + "\n")


def assert_quiet(*workers) -> None:
    """No worker met a database error it could not handle itself."""
    for worker in workers:
        output = worker.output()
        for sign in ("Traceback", "OperationalError", "locked", "handing it back", " failed"):
            assert sign not in output, output


def test_database_restarted_twice(scheduler, tmp_path, start_worker):
    """A restart while eight steps run (their checkpoints meet dead connections), then one while
    they are parked: every execution completes, no body runs twice, no lease is waited out."""
    data = os.environ.get("ZART_PRIVATE_PGDATA")
    if not data:
        pytest.skip("run by tests/test_faults.py::test_database_restart")

    def restart() -> float:
        started = time.monotonic()
        pg_ctl = [f"{os.environ['ZART_PRIVATE_PGBIN']}/pg_ctl", "-D", data, "-m", "fast", "-w"]
        pg_ctl += ["-l", f"{data}/log"]  # else the new server keeps this call's output open
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *pg_ctl, "restart"], check=True, capture_output=True, timeout=60)
        connection.close()  # the test's own connection died with the server, like the workers'
        return time.monotonic() - started

    log = str(tmp_path / "restart.log")
    ids = [f"r-{n}" for n in range(8)]
    gate = Path(f"{log}.hold-second")
    gate.touch()
    for execution_id in ids:
        scheduler.start(execution_id, "three-steps", Job(log=log, name=execution_id))
    workers = [start_worker("--concurrency", "4") for _ in range(2)]
    wait_until(
        lambda: sum(" start second" in line for line in lines(log)) == len(ids),
        what="every second step to start",
    )
    restart()
    gate.unlink()
    started = time.monotonic()
    wait_until(
        lambda: Execution.objects.filter(pk__in=ids, status="waiting").count() == len(ids),
        timeout=20,
        what="every execution to park after the restart",
    )
    stalled = time.monotonic() - started
    restart()
    started = time.monotonic()
    for execution_id in ids:
        scheduler.offer_event(execution_id, "go", Approval(True, "After the restart"))
    for execution_id in ids:
        scheduler.wait_completion(execution_id, timeout=20)
    stalled = max(stalled, time.monotonic() - started)
    done = [line for line in lines(log) if " done " in line]
    assert len(done) == 3 * len(ids) and len(set(done)) == len(done), done
    report("database restarted twice", ids, 2, stalled)
    assert not Execution.objects.filter(pk__in=ids, recoveries__gt=0).exists()
    for worker in workers:
        assert "Traceback" not in worker.output(), worker.output()


def test_plain_sqlite_settings(scheduler, manager, tmp_path, start_worker):
    """Two workers, and this process starting executions, offering events and deciding
    approvals from two threads at once, on `startproject`'s SQLite settings.

    No body whose checkpoint committed runs again. A body may run twice only where its first
    run's checkpoint was refused because its worker lost the lease ("lease lost"): the heartbeat
    queues for SQLite's one write lock with every other writer, and at load average 13 it waited
    4.8 s for it, past these workers' 2 s lease. A worker whose claims get the lock meanwhile
    renews its leases in them; one that is full makes no claim, and another worker may take an
    execution over (at-least-once, as leases promise)."""
    if not os.environ.get("ZART_SQLITE_PLAIN"):
        pytest.skip("run by tests/test_faults.py::test_plain_sqlite_settings_...")
    assert connection.settings_dict["OPTIONS"] == {}
    log = str(tmp_path / "plain.log")
    events = [f"e-{n}" for n in range(25)]
    approvals = [f"a-{n}" for n in range(25)]
    workers = [start_worker("--concurrency", "4") for _ in range(2)]
    errors: list[BaseException] = []

    def client(work) -> threading.Thread:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the test, whatever it is
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    def offer_events() -> None:
        for execution_id in events:
            scheduler.start(execution_id, "three-steps", Job(log=log, name=execution_id))
            scheduler.offer_event(execution_id, "go", Approval(True, "Early"))

    def decide_approvals() -> None:
        for execution_id in approvals:
            scheduler.start(execution_id, "approval-task", REQUEST)
        decided: set[str] = set()
        limit = time.monotonic() + 45
        while len(decided) < len(approvals) and time.monotonic() < limit:
            waiting = ApprovalRequest.objects.filter(execution_id__in=approvals, status="pending")
            for execution_id in waiting.values_list("execution_id", flat=True):
                decide(execution_id, manager, approved=True, comment="plain settings")
                decided.add(execution_id)

    for thread in [client(offer_events), client(decide_approvals)]:
        thread.join(timeout=60)
    assert errors == []
    started = time.monotonic()
    ids = events + approvals
    wait_until(
        lambda: Execution.objects.filter(pk__in=ids, status="completed").count() == len(ids),
        timeout=30,
        what="every execution to complete",
    )
    done = [line for line in lines(log) if " done " in line]
    assert len(set(done)) == 3 * len(events), done
    twice = {line.split()[0] for line in done if done.count(line) > 1}
    output = "".join(worker.output() for worker in workers)
    assert all(f"execution {e}: lease lost" in output for e in twice), (done, output)
    report("plain SQLite settings, 2 workers + 2 writers", ids, 0, time.monotonic() - started)
    assert_quiet(*workers)

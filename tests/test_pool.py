"""A worker on PostgreSQL with Django's connection pool (``OPTIONS={"pool": ...}``) holds a
connection only while it talks to the database: a step body waiting on I/O holds none, so a
process runs more executions at once than its pool has connections, and several processes with
high concurrency stay under the server's ``max_connections``."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from django.db import connection

from tests import async_workflows
from tests.conftest import wait_until
from tests.workflows import Approval, Job, lines
from zart_django import store
from zart_django.models import Execution

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

EXECUTIONS = 8
POOL = 3


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("connection pools are PostgreSQL's (Django's pool option)")


def pooled_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name = 'zart-pool-test'"
        )
        return cursor.fetchone()[0]


def test_step_bodies_waiting_on_io_hold_no_pooled_connection(
    scheduler, tmp_path, start_worker, monkeypatch
):
    log = str(tmp_path / "steps.log")
    gate = Path(f"{log}.hold-first")
    gate.touch()
    for n in range(EXECUTIONS):
        scheduler.start(f"pooled-{n}", "breaks", Job(log=log, name=f"job-{n}"))
    monkeypatch.setenv("ZART_TEST_PG_POOL", str(POOL))
    worker = start_worker("--concurrency", str(EXECUTIONS), "--batch-size", str(EXECUTIONS))
    started = [f"job-{n} start first" for n in range(EXECUTIONS)]
    wait_until(
        lambda: all(line in lines(log) for line in started),
        what=f"all {EXECUTIONS} executions inside their first step at once",
    )
    # The pool's connections and the listener's own: far fewer than the executions in flight.
    assert pooled_connections() <= POOL + 1
    gate.unlink()
    for n in range(EXECUTIONS):
        assert scheduler.wait_completion(f"pooled-{n}", timeout=60) == [
            "first ok",
            "fragile ok on attempt 1",
            "second ok",
        ]
    assert all(lines(log).count(line) == 1 for line in started)
    assert Execution.objects.filter(recoveries__gt=0).count() == 0
    assert "handing it back" not in worker.output()


def test_without_a_pool_the_connection_is_kept():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    store.release_pooled_connection()
    assert connection.connection is not None


def test_async_executions_engine_threads_hold_no_pooled_connection_between_calls(
    scheduler, tmp_path, start_worker, monkeypatch
):
    job = Job(log=str(tmp_path / "steps.log"))
    gate = Path(f"{job.log}.hold-a-first")
    gate.touch()
    for n in range(EXECUTIONS):
        scheduler.start_for(
            async_workflows.async_three_steps, f"apooled-{n}", replace(job, name=f"job-{n}")
        )
    monkeypatch.setenv("ZART_TEST_PG_POOL", str(POOL))
    worker = start_worker("--concurrency", str(EXECUTIONS), "--batch-size", str(EXECUTIONS))
    wait_until(
        lambda: all(f"job-{n} start a-first" in lines(job.log) for n in range(EXECUTIONS)),
        what=f"all {EXECUTIONS} async executions inside their first step at once",
    )
    assert pooled_connections() <= POOL + 1
    gate.unlink()
    for n in range(EXECUTIONS):
        wait_until(lambda n=n: Execution.objects.get(pk=f"apooled-{n}").status == "waiting")
        scheduler.offer_event(f"apooled-{n}", "go", Approval(True, "Kim"))
    for n in range(EXECUTIONS):
        output = scheduler.wait_completion(f"apooled-{n}", timeout=60)
        assert output["results"][0] == "a-first ok"
    assert Execution.objects.filter(recoveries__gt=0).count() == 0
    assert "handing it back" not in worker.output()

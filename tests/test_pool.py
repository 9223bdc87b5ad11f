"""A worker on PostgreSQL with Django's connection pool (``OPTIONS={"pool": ...}``) holds a
connection only while it talks to the database: a step body waiting on I/O holds none, so a
process runs more executions at once than its pool has connections, and several processes with
high concurrency stay under the server's ``max_connections``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from django.db import connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

from tests import async_workflows
from tests.conftest import wait_until
from tests.test_parallel import step_row
from tests.workflows import Approval, Job, lines
from zart_django import store
from zart_django.models import Execution, StepResult
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

EXECUTIONS = 8
POOL = 3
POOLED = "pooled"


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


@pytest.fixture
def pooled(transactional_db, settings) -> Iterator[BaseDatabaseWrapper]:
    """The engine on a connection of this thread to the test database with Django's pool of one
    connection (an alias made for the test, outside ``DATABASES``)."""
    options = {**connection.settings_dict["OPTIONS"], "pool": {"min_size": 1, "max_size": 1}}
    wrapper = type(connections["default"])({**connection.settings_dict, "OPTIONS": options}, POOLED)
    connections[POOLED] = wrapper
    settings.ZART = {**settings.ZART, "DATABASE": POOLED}
    yield wrapper
    wrapper.close()
    wrapper.close_pool()
    del connections[POOLED]


def stored(execution_id: str) -> list[int]:
    """The ids of the execution's steps, read on another connection (``default``)."""
    steps = StepResult.objects.using("default").filter(execution_id=execution_id)
    return list(steps.values_list("pk", flat=True))


def claimed_on(scheduler, job: Job, execution_id: str) -> store.Claim:
    scheduler.start(execution_id, "three-steps", job)
    (claim,) = store.claim_due("test", 1, lease=30, tasks=["three-steps"])
    return claim


def test_a_checkpoint_borrows_a_pooled_connection_for_its_statement_alone(pooled, scheduler, job):
    """While the thread holds no connection (a worker gives it back before each step's body),
    the checkpoint borrows one from the pool and gives it back: Django's wrapper stays
    unconnected, and the step is stored."""
    claim = claimed_on(scheduler, job, "p-loan")
    pooled.close()
    row = step_row(claim, 0)
    store.checkpoint(claim, row, 30)
    assert pooled.connection is None
    assert pooled.pool.get_stats()["pool_available"] == 1  # given back
    assert stored("p-loan") == [row.pk]


def test_a_pooled_connection_given_back_outside_autocommit_still_commits_the_checkpoint(
    pooled, scheduler, job
):
    """A connection closed inside a transaction goes back to the pool with autocommit off; the
    checkpoint that borrows it turns autocommit on, so its statement commits (the pool would
    roll it back when it is given back)."""
    claim = claimed_on(scheduler, job, "p-autocommit")
    pooled.close()
    raw = pooled.pool.getconn()
    raw.autocommit = False
    pooled.pool.putconn(raw)
    row = step_row(claim, 0)
    store.checkpoint(claim, row, 30)
    assert stored("p-autocommit") == [row.pk]  # committed: seen from another connection


def test_a_connection_created_receiver_sees_the_checkpoints_connection(pooled, scheduler, job):
    """A project that configures each connection Django hands out (``connection_created``)
    keeps seeing every one: the checkpoint then connects through Django."""
    claim = claimed_on(scheduler, job, "p-created")
    pooled.close()
    seen: list[str] = []

    def created(sender, connection, **kwargs):
        seen.append(connection.alias)

    connection_created.connect(created)
    try:
        store.checkpoint(claim, step_row(claim, 0), 30)
    finally:
        connection_created.disconnect(created)
    assert seen == [POOLED]
    assert len(stored("p-created")) == 1


def test_an_execute_wrapper_sees_a_pooled_checkpoint(pooled, scheduler, job):
    claim = claimed_on(scheduler, job, "p-wrapped")
    pooled.close()
    seen: list[str] = []

    def hook(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with pooled.execute_wrapper(hook):
        store.checkpoint(claim, step_row(claim, 0), 30)
    assert [sql for sql in seen if "RETURNING" in sql]


def test_a_pooled_checkpoint_whose_connection_died_is_written_on_a_new_one(pooled, scheduler, job):
    """The server ended the pooled connection the checkpoint borrows: the pool drops it and the
    write is retried on a new one, stored once."""
    claim = claimed_on(scheduler, job, "p-dead")
    pooled.close()
    raw = pooled.pool.getconn()
    pid = raw.info.backend_pid
    pooled.pool.putconn(raw)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    row = step_row(claim, 0)
    store.checkpoint(claim, row, 30)
    assert stored("p-dead") == [row.pk]


def test_executions_run_on_a_pool_of_one_connection(pooled, scheduler, job):
    """Every query of a run, the checkpoints borrowing from the pool among them, fits in one
    pooled connection: none waits for a second."""
    scheduler.start("p-run", "three-steps", job)
    run_until_idle()
    scheduler.offer_event("p-run", "go", Approval(True, "Kim"))
    run_until_idle()
    assert Execution.objects.get(pk="p-run").status == "completed"
    assert len(stored("p-run")) == 4

"""The checkpoint's statement: fenced by the lease token on both of its paths (a new row, a row
stored before), serialized with a claim by a shared row lock on PostgreSQL, and leaving the
execution's row unwritten (so PostgreSQL can keep its index entries: no new row version a step).
Each is checked on both ways the statement is run: the engine's own (straight on ``sqlite3``; a
prepared statement when psycopg prepares) and Django's cursor (while Django logs queries).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.db import connection, connections, transaction
from django.db.models.signals import post_init
from django.test.utils import CaptureQueriesContext

from tests.conftest import wait_until
from tests.test_parallel import step_row
from zart_django import backends, clock, store
from zart_django.errors import LeaseLost
from zart_django.models import (
    Event,
    Execution,
    Run,
    StepKind,
    StepResult,
    StepStatus,
    new_step_row,
)
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture(params=["engine's own", "Django's cursor"])
def run_by(request) -> Iterator[str]:
    """How the checkpoint's statement runs: the engine's own way (on PostgreSQL with psycopg's
    prepared statements turned on, from the first execution), or Django's logging cursor."""
    connection.ensure_connection()
    raw = connection.connection
    threshold = getattr(raw, "prepare_threshold", None)
    if request.param == "Django's cursor":
        connection.force_debug_cursor = True
    elif connection.vendor == "postgresql":
        raw.prepare_threshold = 0
    yield request.param
    connection.force_debug_cursor = False
    if connection.vendor == "postgresql" and connection.connection is raw:
        raw.prepare_threshold = threshold


def prepared_checkpoints() -> list[str]:
    """The checkpoint statements this PostgreSQL session has prepared."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
            ["WITH owned AS%"],
        )
        return [statement for (statement,) in cursor.fetchall()]


def claimed(scheduler, job, execution_id: str) -> store.Claim:
    scheduler.start(execution_id, "three-steps", job)
    (claim,) = store.claim_due("test", 1, lease=30, tasks=["three-steps"])
    return claim


def step(claim: store.Claim, position: int = 0, status: str = StepStatus.COMPLETED) -> StepResult:
    row = step_row(claim, position)
    row.status = status
    return row


def execution_row_version(execution_id: str) -> tuple[str, str, str]:
    """What a write of the execution's row changes: its version (``xmin`` on PostgreSQL, the
    row itself on SQLite), its due time and its last update."""
    execution = Execution.objects.get(pk=execution_id)
    version = ""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT xmin::text FROM {Execution._meta.db_table} WHERE id = %s", [execution_id]
            )
            (version,) = cursor.fetchone()
    return version, str(execution.scheduled_at), str(execution.updated_at)


def test_a_checkpoint_leaves_the_executions_row_unwritten(scheduler, job, run_by):
    """No new version of the execution's row per step: on PostgreSQL its ``xmin`` stays, so the
    step adds no index entries to the executions table (the due index's column is not touched)."""
    claim = claimed(scheduler, job, "c-unwritten")
    before = execution_row_version("c-unwritten")
    row = step(claim)
    store.checkpoint(claim, row, 30)
    row.status, row.attempts = StepStatus.FAILED, 2
    store.checkpoint(claim, row, 30)
    assert execution_row_version("c-unwritten") == before
    assert StepResult.objects.get(pk=row.pk).attempts == 2
    if connection.vendor == "postgresql":
        assert len(prepared_checkpoints()) == (2 if run_by == "engine's own" else 0)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def test_a_claim_alone_commits_without_waiting_for_the_disk_and_takes_what_it_was_asked(
    scheduler, job
):
    """PostgreSQL: the claim turns ``synchronous_commit`` off for its own transaction only; the
    connection's checkpoints after it wait for the disk. Set in the ``WHERE``, the volatile
    ``set_config`` had made a claim of one take three executions (the subquery ran per row)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's commits do not depend on the claim")
    for n in range(3):
        scheduler.start(f"c-async-{n}", "three-steps", job)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(*backends.current().claim("token", "me", ["three-steps"], 1, 30.0))
        assert len(cursor.fetchall()) == 1
        assert synchronous_commit() == "off"
    assert synchronous_commit() == "on"
    assert len(store.claim_due("me", 1, 30.0, tasks=["three-steps"])) == 1
    assert synchronous_commit() == "on"
    run_until_idle()  # the one left: claimed, its steps checkpointed, parked
    statuses = Execution.objects.order_by("status").values_list("status", flat=True)
    assert list(statuses) == ["running", "running", "waiting"]


def test_a_step_writes_two_index_entries_and_lookups_by_execution_still_use_an_index():
    """The step, event and run tables index the execution only through their unique
    constraint (it begins with it): a checkpoint writes the primary key's entry and that one."""
    tables = {model._meta.db_table: model for model in (StepResult, Event, Run)}
    with connection.cursor() as cursor:
        for table, model in tables.items():
            constraints = connection.introspection.get_constraints(cursor, table)
            indexed = [
                tuple(c["columns"])
                for c in constraints.values()
                if (c["index"] or c["unique"]) and not c["primary_key"]
            ]
            unique = next(c for c in model._meta.constraints if c.name.startswith("zart_"))
            key = tuple(model._meta.get_field(f).column for f in unique.fields)
            assert indexed == [key], table
            assert key[0] == "execution_id"


def test_a_step_is_one_statement(scheduler, job):
    scheduler.start("c-one", "three-steps", job)
    with CaptureQueriesContext(connection) as first:
        run_until_idle()
    steps = StepResult.objects.filter(execution_id="c-one").count()
    checkpoints = [q for q in first.captured_queries if "zart_django_stepresult" in q["sql"]]
    writes = [q for q in checkpoints if not q["sql"].startswith("SELECT")]
    assert len(writes) == steps == 3  # two steps and the wait: one statement each


@pytest.mark.parametrize("stored_before", [False, True], ids=["new row", "row stored before"])
def test_a_stale_token_writes_nothing(scheduler, job, stored_before, run_by):
    claim = claimed(scheduler, job, "c-stale")
    row = step(claim, status=StepStatus.RETRYING)
    if stored_before:
        store.checkpoint(claim, row, 30)
    stale = replace(claim, token="stale")
    row.status = StepStatus.COMPLETED
    with pytest.raises(LeaseLost):
        store.checkpoint(stale, row, 30)
    stored = list(StepResult.objects.filter(execution_id="c-stale").values_list("status"))
    assert stored == ([("retrying",)] if stored_before else [])


def test_a_checkpoint_behind_a_claims_lock_sees_the_new_token(scheduler, job, run_by):
    """A checkpoint that meets the row locked by a claim that takes the execution over waits for
    it, then sees the new token and writes nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite serializes every write")
    claim = claimed(scheduler, job, "c-locked")
    params = connections["default"].get_connection_params()
    params = {k: v for k, v in params.items() if k != "context"}
    holder, observer = psycopg.connect(**params), psycopg.connect(**params, autocommit=True)
    table = Execution._meta.db_table
    holder.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE", ["c-locked"])
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            store.checkpoint(claim, step(claim), 30)
            outcome.append(None)
        except LeaseLost as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    def blocked() -> bool:
        waiting = observer.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND query LIKE %s",
            ["WITH owned AS%"],
        )
        return waiting.fetchone()[0] == 1

    writer = threading.Thread(target=write)
    writer.start()
    wait_until(blocked, timeout=15, what="the checkpoint to wait for the row lock")
    holder.execute(f"UPDATE {table} SET lease_token = 'next' WHERE id = %s", ["c-locked"])
    holder.commit()
    holder.close()
    observer.close()
    writer.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], LeaseLost)
    assert not StepResult.objects.filter(execution_id="c-locked").exists()


def test_a_retry_takes_the_row_its_lost_first_attempt_stored(scheduler, job, run_by):
    claim = claimed(scheduler, job, "c-lost")
    row = step(claim)
    store.checkpoint(claim, row, 30)  # committed ...
    stored, row.pk = row.pk, None  # ... but the answer never came back
    store.checkpoint(claim, row, 30)
    assert row.pk == stored
    assert StepResult.objects.filter(execution_id="c-lost").count() == 1
    row.pk = None
    with pytest.raises(LeaseLost):
        store.checkpoint(replace(claim, token="stale"), row, 30)


def test_an_execute_wrapper_sees_every_checkpoint(scheduler, job):
    """The engine's own way of running the checkpoint steps aside while a project's
    ``execute_wrapper`` watches the connection: the hook sees each step's statement."""
    seen: list[str] = []

    def hook(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    scheduler.start("c-wrapped", "three-steps", job)
    with connection.execute_wrapper(hook):
        run_until_idle()
    steps = StepResult.objects.filter(execution_id="c-wrapped").count()
    writes = [sql for sql in seen if "zart_django_stepresult" in sql and "RETURNING" in sql]
    assert len(writes) == steps == 3


def test_a_connections_checkpoints_share_one_cursor(scheduler, job, monkeypatch):
    """On PostgreSQL the checkpoints of one connection run on one psycopg cursor, whose
    parameters' adapters are found once (a new cursor finds them again)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite's checkpoint has its own way (straight on sqlite3)")
    made: list[psycopg.Cursor] = []

    class Counted(psycopg.Cursor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(psycopg, "Cursor", Counted)
    claim = claimed(scheduler, job, "c-cursor")
    connection.ensure_connection()
    rows = [step(claim, position) for position in range(3)]
    made.clear()
    for row in rows:
        store.checkpoint(claim, row, 30)
    assert len(made) <= 1
    assert StepResult.objects.filter(execution_id="c-cursor").count() == 3


@pytest.mark.parametrize("result", [["a", {"b": None}], None, 7, "text"])
def test_step_values_are_what_the_fields_would_prepare(scheduler, job, result):
    """The checkpoint's own preparation of a row's values gives what Django's would: JSON
    results of every shape (None as SQL NULL), times in UTC to the microsecond and to the whole
    second, and in another zone."""
    claim = claimed(scheduler, job, "c-values")
    row = step(claim)
    row.deadline = (clock.now() + timedelta(hours=1)).astimezone(ZoneInfo("Europe/Paris"))
    row.finished_at = row.started_at.replace(microsecond=0)
    row.result = result
    row.status, row.kind = StepStatus.RETRYING, StepKind.STEP  # enum members, not plain str
    backend = backends.current()
    expected = [
        f.get_db_prep_save(getattr(row, f.attname), connection) for f in backend.step_fields
    ]
    assert [str(v) for v in backend.step_values(row)] == [str(v) for v in expected]


def test_a_new_step_row_is_what_the_models_constructor_makes():
    """The engine's quick construction of a step's row leaves every other field at its default,
    as ``StepResult(...)`` would."""
    now = clock.now()
    quick = new_step_row("e-1", 2, 3, "charge", StepKind.STEP, now)
    usual = StepResult(
        execution_id="e-1", run=2, position=3, name="charge", kind=StepKind.STEP, started_at=now
    )
    assert quick._state.adding and quick.pk is None and quick._state.db is None
    for field in StepResult._meta.concrete_fields:
        assert getattr(quick, field.attname) == getattr(usual, field.attname), field.name


def test_a_projects_post_init_receiver_hears_of_a_new_step_row():
    """While a receiver listens to ``post_init`` for step rows, the engine's rows are built by
    the constructor, so it hears of each."""
    heard: list[StepResult] = []

    def receiver(sender, instance, **kwargs) -> None:
        heard.append(instance)

    post_init.connect(receiver, sender=StepResult)
    try:
        row = new_step_row("e-1", 1, 0, "charge", StepKind.STEP, clock.now())
    finally:
        post_init.disconnect(receiver, sender=StepResult)
    assert heard == [row] and heard[0] is row
    assert new_step_row("e-1", 1, 1, "charge", StepKind.STEP, clock.now()) not in heard


def test_a_post_init_receiver_connected_before_a_run_hears_of_each_of_its_step_rows(scheduler, job):
    """A run asks once, as it begins, whether step rows are heard: a receiver connected before
    it hears of every row the run makes (the three steps of ``loop``)."""
    heard: list[tuple[str, int]] = []

    def receiver(sender, instance, **kwargs) -> None:
        heard.append((instance.execution_id, instance.position))

    scheduler.start("heard-1", "loop", replace(job, items=[2, 3, 4]))
    post_init.connect(receiver, sender=StepResult)
    try:
        run_until_idle()
    finally:
        post_init.disconnect(receiver, sender=StepResult)
    assert Execution.objects.get(pk="heard-1").status == "completed"
    assert sorted(set(heard)) == [("heard-1", 0), ("heard-1", 1), ("heard-1", 2)]


def test_a_checkpoint_in_a_transaction_does_not_wait_for_the_processs_other_writers(
    scheduler, job, caplog
):
    """On SQLite a process's checkpoints outside a transaction write one at a time; one made
    inside a transaction that holds SQLite's write lock goes ahead of them, or it would wait
    for a thread that waits for that very transaction (until SQLite's busy timeout failed that
    thread's write, to be retried: a stall and a "database busy" warning)."""
    if connection.vendor != "sqlite":
        pytest.skip("the process's one writer at a time is SQLite's")
    waiting, inside = claimed(scheduler, job, "c-waiting"), claimed(scheduler, job, "c-inside")
    outcome: list[BaseException | None] = []

    def write() -> None:
        try:
            store.checkpoint(waiting, step(waiting), 30)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)
        finally:
            connections.close_all()

    writer = threading.Thread(target=write)
    with store.atomic():  # BEGIN IMMEDIATE: this connection holds SQLite's write lock
        writer.start()
        wait_until(
            backends.current()._one_writer.locked,
            timeout=15,
            what="the other thread's checkpoint to wait for SQLite's lock",
        )
        store.checkpoint(inside, step(inside), 30)
    writer.join(30)
    assert outcome == [None]
    assert StepResult.objects.filter(execution_id__in=["c-waiting", "c-inside"]).count() == 2
    assert "database busy" not in caplog.text

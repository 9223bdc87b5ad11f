"""``offer_event`` in a transaction of its own, as a web request or a script makes it.

On PostgreSQL with psycopg 3 the offer then runs in pipeline mode and begins and commits its
transaction itself (two round trips instead of five): every way it can fail must still raise
what it raised before, store nothing, and leave the connection usable. Inside the caller's
transaction it is a savepoint, as before (``test_engine.py`` runs there).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from tests.workflows import Approval
from zart_django import (
    EventAlreadyDelivered,
    ExecutionFinished,
    ExecutionNotFound,
    PayloadError,
    backends,
)
from zart_django.models import Event, Execution
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


def parked(scheduler, job, execution_id: str) -> None:
    scheduler.start(execution_id, "three-steps", job)
    run_until_idle()
    assert Execution.objects.get(pk=execution_id).status == "waiting"


def stored(execution_id: str) -> list[str]:
    return list(Event.objects.filter(execution_id=execution_id).values_list("name", flat=True))


def test_an_offer_of_its_own_resumes_the_execution(scheduler, job):
    parked(scheduler, job, "o-1")
    assert not connection.in_atomic_block
    scheduler.offer_event("o-1", "go", Approval(True, "Own"))
    assert (stored("o-1"), connection.get_autocommit()) == (["go"], True)
    run_until_idle()
    assert scheduler.wait_completion("o-1", timeout=5)["results"][2] == "third ok by Own"


@pytest.mark.parametrize(
    "offer, error",
    [
        (("o-missing", "go", Approval(True, "x")), ExecutionNotFound),
        (("o-2", "go", {"approved": "yes"}), PayloadError),
        (("o-2", "go/..", Approval(True, "x")), PayloadError),
        (("o-2", "go", Approval(True, "x")), EventAlreadyDelivered),
        (("o-2\x00", "go", Approval(True, "x")), PayloadError),
    ],
    ids=[
        "unknown execution",
        "payload of the wrong type",
        "name with a slash",
        "second offer",
        "id with a NUL byte",
    ],
)
def test_a_refused_offer_stores_nothing_and_leaves_the_connection_usable(
    scheduler, job, offer, error
):
    parked(scheduler, job, "o-2")
    if error is EventAlreadyDelivered:
        scheduler.offer_event("o-2", "go", Approval(True, "First"))
    before = (Execution.objects.filter(pk="o-2").values().get(), stored("o-2"))
    with pytest.raises(error):
        scheduler.offer_event(*offer)
    assert (Execution.objects.filter(pk="o-2").values().get(), stored("o-2")) == before
    assert connection.get_autocommit() and not connection.in_atomic_block


def test_an_offer_to_a_finished_execution_is_refused(scheduler):
    scheduler.start("o-3", "no-input")
    run_until_idle()
    with pytest.raises(ExecutionFinished):
        scheduler.offer_event("o-3", "go", {})
    assert stored("o-3") == []


def test_a_conflict_found_only_at_the_commit_is_an_event_already_delivered(
    scheduler, job, monkeypatch
):
    """Two offers that both read "not delivered yet" (they cannot both hold the lock, but the
    unique constraint is the last word): the insert's error surfaces at the commit in pipeline
    mode, and is still ``EventAlreadyDelivered`` with nothing stored by the loser."""
    parked(scheduler, job, "o-4")
    scheduler.offer_event("o-4", "go", Approval(True, "Winner"))
    backend = backends.current()
    read = backend.read_offer_state

    monkeypatch.setattr(
        backend, "read_offer_state", lambda row: replace(read(row), delivered=False)
    )
    with pytest.raises(EventAlreadyDelivered):
        scheduler.offer_event("o-4", "go", Approval(False, "Loser"))
    monkeypatch.undo()
    assert Event.objects.get(execution_id="o-4").payload["reviewer"] == "Winner"
    assert connection.get_autocommit() and not connection.in_atomic_block
    run_until_idle()
    assert scheduler.wait_completion("o-4", timeout=5)["results"][2] == "third ok by Winner"


def test_two_offers_at_once_deliver_exactly_one(scheduler, job):
    parked(scheduler, job, "o-5")
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def offer(reviewer: str) -> None:
        start.wait()
        try:
            scheduler.offer_event("o-5", "go", Approval(True, reviewer))
            outcomes.append("delivered")
        except EventAlreadyDelivered:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=offer, args=(name,)) for name in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["delivered", "refused"]
    assert stored("o-5") == ["go"]


def test_an_offer_inside_the_callers_transaction_rolls_back_with_it(scheduler, job):
    parked(scheduler, job, "o-6")
    with pytest.raises(RuntimeError), transaction.atomic():
        scheduler.offer_event("o-6", "go", Approval(True, "Undone"))
        raise RuntimeError("the caller changed its mind")
    assert (stored("o-6"), Execution.objects.get(pk="o-6").status) == ([], "waiting")


def test_an_offer_on_a_connection_the_server_closed_raises_djangos_error(scheduler, job):
    """The pipeline's errors are translated as Django's own (a ``DatabaseError``), nothing is
    stored, and the next offer, on a new connection, goes through."""
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL closes a connection that pg_terminate_backend names")
    parked(scheduler, job, "o-7")
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(DatabaseError):
        scheduler.offer_event("o-7", "go", Approval(True, "Cut"))
    connection.close()
    assert stored("o-7") == []
    scheduler.offer_event("o-7", "go", Approval(True, "Again"))
    assert stored("o-7") == ["go"]


def test_where_libpq_has_no_pipeline_mode_the_offer_runs_in_a_plain_transaction(
    scheduler, job, monkeypatch
):
    """A system libpq older than 14 has no pipeline mode: the offer must not try it."""
    if connection.vendor != "postgresql":
        pytest.skip("pipeline mode is psycopg's")
    parked(scheduler, job, "o-8")
    monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))

    def refused(*args, **kwargs):
        raise psycopg.NotSupportedError("libpq 13 has no pipeline mode")

    monkeypatch.setattr(psycopg.Connection, "pipeline", refused)
    scheduler.offer_event("o-8", "go", Approval(True, "Plain"))
    with pytest.raises(EventAlreadyDelivered):
        scheduler.offer_event("o-8", "go", Approval(True, "Again"))
    assert stored("o-8") == ["go"]


def test_an_offer_while_django_logs_queries_is_delivered_and_logged(scheduler, job):
    """``DEBUG`` or ``CaptureQueriesContext``: Django's logging cursor in the pipeline."""
    parked(scheduler, job, "o-9")
    with CaptureQueriesContext(connection) as queries:
        scheduler.offer_event("o-9", "go", Approval(True, "Logged"))
    assert stored("o-9") == ["go"]
    assert sum("zart_django_event" in q["sql"] for q in queries.captured_queries) >= 1

"""Wake-ups: registered by the app's ready(), called by the store for each write that makes work due.

Issue 9: ``store`` imported ``notify``, which imported ``dispatch``, which imports ``worker``,
which imports ``store``: an import cycle. The store now calls the registry in ``wakeups``.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from django.db import connection, transaction

from tests.conftest import ROOT, WorkerProcess, wait_until
from tests.workflows import Approval, Job, lines
from zart_django import notify_sockets
from zart_django.models import Event, Execution
from zart_django.notify_postgres import CHANNEL
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


class Rollback(Exception):
    pass


def start_then_roll_back(scheduler, job, execution_id: str) -> None:
    """Start an execution (a write that makes work due) in a transaction that rolls back."""
    with pytest.raises(Rollback), transaction.atomic():
        scheduler.start(execution_id, "three-steps", job)
        raise Rollback


def test_the_store_imports_neither_notify_nor_dispatch():
    code = (
        "import sys, django; django.setup()\n"
        "from zart_django import replay, scheduler, store  # noqa\n"
        "print(sorted({'zart_django.notify', 'zart_django.dispatch'} & set(sys.modules)))"
    )
    # In memory: no wake-up channel, so ready() registers no waker and imports neither module.
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ZART_DB": "sqlite",
        "ZART_DB_NAME": ":memory:",
    }
    env.pop("ZART_DISPATCH", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "[]", done.stderr


@pytest.fixture
def listener() -> Iterator[psycopg.Connection]:
    """A connection listening where workers listen."""
    if connection.vendor != "postgresql":
        pytest.skip("NOTIFY is PostgreSQL's")
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def notifications(conn: psycopg.Connection) -> int:
    return sum(1 for _ in conn.notifies(timeout=0.5))


def test_each_due_write_notifies_listeners_and_a_rolled_back_one_does_not(scheduler, job, listener):
    scheduler.start("wake-1", "three-steps", job)
    assert notifications(listener) == 1
    start_then_roll_back(scheduler, job, "wake-2")
    assert notifications(listener) == 0
    scheduler.start("wake-3", "three-steps", job)
    scheduler.cancel("wake-1")  # finishes it: no work becomes due
    assert notifications(listener) == 1


def test_an_offer_that_resumes_a_parked_execution_notifies_once_and_only_if_it_commits(
    scheduler, job, listener
):
    """PostgreSQL sends the offer's wake-up inside the delivery's own statement: still one
    notification for the one execution it makes due, none for an event kept in the inbox of a
    running execution, and none when the caller's transaction rolls back."""
    scheduler.start("offer-1", "three-steps", job)
    run_until_idle()
    assert (parked("offer-1"), notifications(listener)) == (True, 1)
    with pytest.raises(Rollback), transaction.atomic():
        scheduler.offer_event("offer-1", "go", Approval(True, "Undone"))
        raise Rollback
    assert (notifications(listener), Event.objects.filter(execution_id="offer-1").count()) == (0, 0)
    scheduler.offer_event("offer-1", "go", Approval(True, "Push"))
    assert notifications(listener) == 1
    run_until_idle()
    assert Execution.objects.get(pk="offer-1").status == "completed"
    scheduler.start("offer-2", "three-steps", job)
    assert notifications(listener) == 1
    scheduler.offer_event("offer-2", "go", Approval(True, "Early"))  # pending: kept, no wake-up
    assert notifications(listener) == 0


@pytest.fixture
def django_q_queue(settings) -> Iterator:
    """The django-q2 broker's queue, empty, with ``DISPATCH = "django_q"`` and no cluster."""
    from django_q.brokers import get_broker

    settings.ZART = {**settings.ZART, "DISPATCH": "django_q"}
    broker = get_broker()
    broker.purge_queue()
    yield broker
    broker.purge_queue()


@pytest.mark.needs("redis")
def test_each_due_write_enqueues_one_task_and_a_rolled_back_one_none(
    scheduler, job, settings, django_q_queue
):
    scheduler.start("q-wake-1", "three-steps", job)
    assert django_q_queue.queue_size() == 1
    start_then_roll_back(scheduler, job, "q-wake-2")
    assert django_q_queue.queue_size() == 1
    scheduler.start("q-wake-3", "three-steps", job)
    assert django_q_queue.queue_size() == 2
    settings.ZART = {**settings.ZART, "DISPATCH": "worker"}  # the wakers follow the setting
    scheduler.start("q-wake-4", "three-steps", job)
    assert django_q_queue.queue_size() == 2


def ready_to_be_woken(worker: WorkerProcess) -> bool:
    """Whether the worker listens for wake-ups and has said it can take work (DEBUG lines)."""
    output = worker.output()
    return "listening on" in output and "ready for wake-ups" in output


def woken(workers: list[WorkerProcess]) -> int:
    return sum(w.output().count("woken by a") for w in workers)


def claims(workers: list[WorkerProcess]) -> int:
    return sum(w.claims() for w in workers)


@pytest.fixture
def idle_workers(start_worker, monkeypatch) -> Callable[[int], list[WorkerProcess]]:
    """Start ``n`` workers that poll only every 30 s, logging at DEBUG; return once each listens
    and is ready: whatever runs within the test's bound was pushed to them, not polled."""

    def start(n: int, *args: str) -> list[WorkerProcess]:
        monkeypatch.setenv("ZART_TEST_LOG_LEVEL", "DEBUG")
        workers = [start_worker("--poll-interval", "30", *args) for _ in range(n)]
        wait_until(lambda: all(map(ready_to_be_woken, workers)), what="the workers to listen")
        return workers

    return start


@pytest.mark.needs("redis")
def test_an_offer_that_resumes_an_execution_enqueues_it_as_well(scheduler, job, django_q_queue):
    """The delivery's own wake-up (PostgreSQL) replaces only the push waker, not the others."""
    scheduler.start("q-offer-1", "three-steps", job)
    run_until_idle()
    queued = django_q_queue.queue_size()
    scheduler.offer_event("q-offer-1", "go", Approval(True, "Queue"))
    assert django_q_queue.queue_size() == queued + 1


def parked(execution_id: str) -> bool:
    return Execution.objects.get(pk=execution_id).status == "waiting"


def test_one_due_execution_wakes_one_of_four_idle_workers_without_a_poll(
    scheduler, job, idle_workers
):
    """The execution may be claimed by a pass of a worker's loop that was under way (the one
    that parked it, say); the wake-up still goes to exactly one worker, which logs it."""
    workers = idle_workers(4)
    scheduler.start("one-1", "three-steps", job)
    wait_until(lambda: parked("one-1"), timeout=20, what="the start to reach a worker")
    wait_until(lambda: woken(workers), what="the woken worker to log it")
    assert (woken(workers), claims(workers)) == (1, 1)
    scheduler.offer_event("one-1", "go", Approval(True, "Push"))
    assert scheduler.wait_completion("one-1", timeout=20)["results"][2] == "third ok by Push"
    wait_until(lambda: woken(workers) > 1, what="the woken worker to log it")
    assert (woken(workers), claims(workers)) == (2, 2)


def test_a_full_worker_leaves_the_wake_up_to_an_idle_one(scheduler, tmp_path, idle_workers):
    workers = idle_workers(2, "--concurrency", "1")
    held = Job(log=str(tmp_path / "held.log"))
    gate = tmp_path / "held.log.hold-second"
    gate.touch()
    scheduler.start("full-1", "three-steps", held)
    wait_until(lambda: "job start second" in lines(held.log), what="the held step")
    free = Job(log=str(tmp_path / "free.log"))
    scheduler.start("full-2", "three-steps", free)
    wait_until(lambda: parked("full-2"), timeout=20, what="the idle worker to take it")
    assert sorted(w.claims() for w in workers) == [1, 1]
    gate.unlink()


def test_offer_event_with_no_worker_listening_succeeds(scheduler, job):
    scheduler.start("alone-1", "three-steps", job)
    Execution.objects.filter(pk="alone-1").update(status="waiting")
    scheduler.offer_event("alone-1", "go", Approval(True, "Nobody"))
    assert Event.objects.filter(execution_id="alone-1", name="go").exists()


@pytest.fixture
def sqlite_file() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the wake-up sockets are SQLite's")


def test_a_sigkilled_workers_socket_is_skipped_and_removed(
    scheduler, job, idle_workers, sqlite_file
):
    killed, alive = idle_workers(2)
    killed.kill()
    folder = notify_sockets.folder_for(connection.settings_dict["NAME"])
    assert len(list(folder.glob("idle-*"))) == 2  # the killed worker's socket is left behind
    for n in range(3):  # each wake-up tries the two sockets in a random order
        scheduler.start(f"stale-{n}", "three-steps", job)
        wait_until(lambda n=n: parked(f"stale-{n}"), timeout=20, what="the live worker to start it")
        scheduler.offer_event(f"stale-{n}", "go", Approval(True, "Live"))
        assert (
            scheduler.wait_completion(f"stale-{n}", timeout=20)["results"][2] == "third ok by Live"
        )
    notify_sockets.ring(folder, 2)  # meets the stale socket if the offers did not
    assert len(list(folder.glob("idle-*"))) == 1
    assert alive.claims() == 6


def bound_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    return sock


def test_ring_skips_a_stale_socket_and_never_blocks_on_a_full_one(tmp_path):
    bound_socket(tmp_path / "idle-000000000001").close()  # closed, its file left: a dead worker
    full = bound_socket(tmp_path / "idle-000000000002")  # never read
    busy = bound_socket(tmp_path / "busy-000000000003")
    assert notify_sockets.ring(tmp_path, 5) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy-000000000003", "idle-000000000002"]
    sent = sum(notify_sockets.ring(tmp_path, 1) for _ in range(2000))  # fills its queue
    assert 0 < sent < 2000
    with pytest.raises(BlockingIOError):
        busy.recv(16, socket.MSG_DONTWAIT)  # nothing goes to a busy worker
    full.close()
    assert notify_sockets.sweep(tmp_path) == 1  # a worker starting removes what the dead left
    assert [p.name for p in tmp_path.iterdir()] == ["busy-000000000003"]
    busy.close()
    assert notify_sockets.ring(tmp_path / "missing", 1) == 0


def test_the_wake_up_folder_and_sockets_are_not_world_writable(tmp_path):
    database = tmp_path / "shared" / "db.sqlite3"
    database.parent.mkdir(mode=0o777)
    database.parent.chmod(0o777)
    channel = notify_sockets.channel_for("default", str(database))
    receiver = channel.receiver("test")
    assert receiver.open()
    try:
        (sock,) = channel.folder.iterdir()
        assert stat.S_IMODE(channel.folder.stat().st_mode) == 0o775
        assert stat.S_IMODE(sock.stat().st_mode) == 0o664
    finally:
        receiver.close()
    assert not channel.folder.exists()  # the last worker out removes it


def test_a_folder_another_user_may_write_is_refused(tmp_path):
    database = tmp_path / "db.sqlite3"
    folder = notify_sockets.folder_for(str(database))
    folder.mkdir()
    folder.chmod(0o777)
    receiver = notify_sockets.channel_for("default", str(database)).receiver("test")
    assert not receiver.open()  # polls instead


def test_where_the_wake_up_folder_goes(tmp_path):
    assert notify_sockets.folder_for(":memory:") is None
    assert notify_sockets.folder_for("file:memdb1?mode=memory&cache=shared") is None
    assert notify_sockets.folder_for("") is None
    beside = tmp_path / "db.sqlite3"
    assert notify_sockets.folder_for(str(beside)) == tmp_path / "db.sqlite3-wakeups"
    deep = tmp_path / ("d" * 100) / "db.sqlite3"
    short = notify_sockets.folder_for(str(deep))
    assert short.parent == Path(tempfile.gettempdir()) and short.name.startswith("zart-")
    assert short == notify_sockets.folder_for(str(deep))  # writers and workers agree
    assert notify_sockets.folder_for(str(tmp_path / ("e" * 100) / "db.sqlite3")) != short

"""Wake-ups: registered by the app's ready(), called by the store for each write that makes work due.

Issue 9: ``store`` imported ``notify``, which imported ``dispatch``, which imports ``worker``,
which imports ``store``: an import cycle. The store now calls the registry in ``wakeups``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import psycopg
import pytest
from django.db import connection, transaction

from tests.conftest import ROOT
from zart_django.notify import CHANNEL

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
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "ZART_DB": "sqlite"}
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

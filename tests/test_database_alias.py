"""``ZART["DATABASE"]``: every query of the engine goes to the connection it names.

The end-to-end tests run real processes on settings where ``default`` and ``zart`` are two
different databases, and look into both afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.utils.connection import ConnectionDoesNotExist

from tests.conftest import ROOT
from zart_django import backends
from zart_django.checks import check_settings
from zart_django.models import Execution, StepResult, WorkerSeen
from zart_django.routers import ZartRouter

ENGINE_TABLES = ("zart_django_execution", "zart_django_stepresult", "zart_django_run")
POSTGRES = "postgresql" in settings.DATABASES["default"]["ENGINE"]


def test_an_alias_missing_from_databases_is_an_error_naming_the_aliases(settings):
    settings.ZART = {"DATABASE": "zart"}
    (error,) = check_settings()
    assert error.id == "zart_django.E009"
    assert "'zart'" in error.msg and "default" in error.hint


def test_the_router_sends_only_the_engine_to_the_alias(settings):
    settings.ZART = {"DATABASE": "zart"}
    router = ZartRouter()
    assert router.db_for_read(Execution) == router.db_for_write(Execution) == "zart"
    assert router.db_for_read(User) is None
    assert router.allow_migrate("zart", "zart_django") is True
    assert router.allow_migrate("default", "zart_django") is False
    assert router.allow_migrate("default", "auth") is None


@pytest.mark.django_db
def test_the_orm_follows_the_alias_in_managers_related_managers_and_save(settings, scheduler):
    """An alias no connection has: whatever queries it is routed to it and fails to connect."""
    scheduler.start("orm-1", "no-input")
    execution = Execution.objects.get(pk="orm-1")
    settings.ZART = {**settings.ZART, "DATABASE": "elsewhere"}

    assert Execution.objects.all().db == "elsewhere"
    assert execution.steps.all().db == execution.events.all().db == "elsewhere"
    assert WorkerSeen.objects.filter(host="h").db == "elsewhere"
    with pytest.raises(ConnectionDoesNotExist):
        StepResult(execution_id="orm-1", run=1, position=0, name="s").save()
    with pytest.raises(ConnectionDoesNotExist):
        scheduler.start("orm-2", "no-input")
    execution.error = "saved where it was loaded"
    execution.save(update_fields=["error"])
    assert Execution.objects.using("default").get(pk="orm-1").error == execution.error


def test_one_backend_per_alias_with_every_identifier_quoted():
    backend = backends.current()
    assert backends.current() is backend
    sql, _ = backend.claim("token", "owner", ["task"], 1, 30.0)
    assert sql.startswith('UPDATE "zart_django_execution" SET "status" = ')
    assert ' "task_name" IN (%s)' in sql


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Two empty databases: the names of ``default`` and ``zart``."""
    if not POSTGRES:
        yield {"default": str(tmp_path / "default.sqlite3"), "zart": str(tmp_path / "zart.sqlite3")}
        return
    import psycopg

    names = {alias: f"zart_alias_{alias}_{os.getpid()}" for alias in ("default", "zart")}
    params = settings.DATABASES["default"]
    server = {"host": params["HOST"], "user": params["USER"], "dbname": "postgres"}
    with psycopg.connect(**server, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    yield names
    with psycopg.connect(**server, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


CHECKED_ELSEWHERE = ("zart", "run_zart_worker")
"""Commands run here with ``--skip-checks``: their system checks load the URLconf (0.9 s a
run); the two-database settings' checks are tested above."""


def manage(names: dict[str, str], *args: str, router: bool, timeout: float = 60) -> str:
    """Run ``manage.py`` on the two-database settings; its output (it must succeed)."""
    if args[0] in CHECKED_ELSEWHERE:
        args = (args[0], "--skip-checks", *args[1:])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_alias",
        "ZART_ALIAS_DEFAULT": names["default"],
        "ZART_ALIAS_ZART": names["zart"],
        "ZART_ALIAS_ROUTER": "1" if router else "",
    }
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def rows(name: str, table: str) -> int | None:
    """How many rows ``table`` of database ``name`` holds (None if it has no such table)."""
    sql = f"SELECT count(*) FROM {table}"
    if not POSTGRES:
        with sqlite3.connect(name) as conn:
            try:
                return conn.execute(sql).fetchone()[0]
            except sqlite3.OperationalError:
                return None
    import psycopg

    params = settings.DATABASES["default"]
    with psycopg.connect(host=params["HOST"], user=params["USER"], dbname=name) as conn:
        try:
            return conn.execute(sql).fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return None


@pytest.mark.timeout(240)
@pytest.mark.parametrize("router", [False, True], ids=["manager", "router"])
def test_a_workflow_runs_on_the_alias_and_leaves_default_alone(databases, tmp_path, router):
    """Migrated, started, run by a real worker and read back: every engine row is in ``zart``;
    ``default`` has none (with the router, not even the tables)."""
    manage(databases, "migrate", "--noinput", router=router)
    manage(databases, "migrate", "--database", "zart", "--noinput", router=router)
    job = {"log": str(tmp_path / "steps.log"), "items": [2, 3, 4]}
    manage(databases, "zart", "start", "loop", "on-the-alias", json.dumps(job), router=router)
    manage(databases, "run_zart_worker", "--once", router=router, timeout=120)
    shown = json.loads(manage(databases, "zart", "show", "on-the-alias", "--json", router=router))

    assert shown["status"] == "completed"
    assert rows(databases["zart"], "zart_django_execution") == 1
    assert rows(databases["zart"], "zart_django_stepresult") == 3
    assert (tmp_path / "steps.log").read_text().count("square") == 3
    left_in_default = {table: rows(databases["default"], table) for table in ENGINE_TABLES}
    expected = None if router else 0
    assert left_in_default == dict.fromkeys(ENGINE_TABLES, expected)


DECIDE_AS_ALICE = """
import django
django.setup()
from django.contrib.auth.models import User
from zart_django.approvals import decide
alice = User.objects.create_superuser("alice", "alice@example.com", "pw")
decide("approved-on-the-alias", alice, approved=True, comment="fine")
"""


@pytest.mark.timeout(240)
@pytest.mark.parametrize("router", [False, True], ids=["manager", "router"])
def test_an_approval_is_decided_on_the_alias_by_a_user_of_default(databases, router):
    """The request and the decision live beside the execution on ``zart``; the reviewer is a
    user of ``default``: the decision and the event it delivers commit together."""
    manage(databases, "migrate", "--noinput", router=router)
    manage(databases, "migrate", "--database", "zart", "--noinput", router=router)
    manage(
        databases,
        "zart",
        "start",
        "quick-approval",
        "approved-on-the-alias",
        json.dumps({"seconds": 600}),
        router=router,
    )
    manage(databases, "run_zart_worker", "--once", router=router, timeout=120)
    manage(databases, "shell", "-c", DECIDE_AS_ALICE, router=router)
    manage(databases, "run_zart_worker", "--once", router=router, timeout=120)
    shown = json.loads(
        manage(databases, "zart", "show", "approved-on-the-alias", "--json", router=router)
    )

    assert shown["status"] == "completed"
    assert rows(databases["zart"], "zart_approvals_approvalrecord") == 1
    assert rows(databases["default"], "auth_user") == 1
    assert rows(databases["default"], "zart_approvals_approvalrecord") == (None if router else 0)

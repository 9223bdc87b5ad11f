"""Deploy safety, in-process: workers run only the tasks they have, unclaimed work is visible.

The same promises with real worker processes on other code are in tests/test_deploy_workers.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from tests.approval_helpers import make_user
from tests.workflows import lines, no_input
from zart_django import TaskRegistry, store
from zart_django.models import Execution
from zart_django.registry import default_registry
from zart_django.replay import run_execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def only(*names: str) -> TaskRegistry:
    """The registry of a worker whose code has only these tasks of the default registry."""
    registry = TaskRegistry()
    for name in names:
        registry.register(name, default_registry.get(name))
    return registry


class TestWorkersRunOnlyWhatTheyKnow:
    def test_an_execution_of_a_task_the_worker_lacks_stays_pending_for_one_that_has_it(
        self, scheduler, job
    ):
        scheduler.start("u-1", "three-steps", job)
        scheduler.start("u-2", "no-input")
        run_until_idle(only("no-input"))  # an older worker: "three-steps" is not in its code
        assert scheduler.get("u-2").status == "completed"
        info = scheduler.get("u-1")
        assert (info.status, info.steps, info.error) == ("pending", [], "")
        assert lines(job.log) == []
        run_until_idle()  # a worker that has it
        assert scheduler.get("u-1").status == "waiting"

    def test_a_claim_for_a_task_the_worker_lacks_is_handed_back_not_failed(self, scheduler, job):
        scheduler.start("u-3", "three-steps", job)
        (claim,) = store.claim_due("w", 1, lease=30, tasks=["three-steps"])
        assert run_execution(claim, only("no-input")) == "handed back"
        execution = Execution.objects.get(pk="u-3")
        assert (execution.status, execution.error, execution.recoveries) == ("pending", "", 0)

    def test_no_claim_without_tasks(self, scheduler):
        scheduler.start("u-4", "no-input")
        assert store.claim_due("w", 10, lease=30, tasks=[]) == []
        assert scheduler.get("u-4").status == "pending"

    def test_get_says_how_long_no_worker_claimed_it(self, scheduler, job):
        scheduler.start("u-5", "three-steps", job)
        run_until_idle(only("no-input"))
        advance_time("10m")
        assert scheduler.get("u-5").unclaimed_for >= timedelta(minutes=10)
        run_until_idle()
        assert scheduler.get("u-5").unclaimed_for is None  # parked with no deadline: not due

    def test_the_admin_shows_and_filters_executions_no_worker_claimed(self, scheduler, job):
        scheduler.start("u-6", "three-steps", job)
        scheduler.start("u-7", no_input.name)
        Execution.objects.filter(pk="u-6").update(
            scheduled_at=Execution.objects.get(pk="u-6").created_at - timedelta(minutes=12)
        )
        client = Client()
        client.force_login(make_user("root", "zart_django.view_execution", staff=True))
        page = client.get("/admin/zart_django/execution/").content.decode()
        assert "not claimed for" in page and "12\xa0minutes" in page
        stale = client.get("/admin/zart_django/execution/?unclaimed=5m").content.decode()
        assert "u-6" in stale and "u-7" not in stale


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_the_claim_still_uses_the_due_index_on_postgresql(scheduler):
    """The task filter does not cost the partial index: with 20,000 finished and 20,000 parked
    executions beside a few due ones, the plan reads ``zart_execution_due``."""
    table = Execution._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (id, task_name, status, input, error, waiting_on, lease_token,"
            " lease_owner, recoveries, created_at, updated_at)"
            " SELECT 'bulk-' || i, 'three-steps', CASE WHEN i % 2 = 0 THEN 'completed'"
            " ELSE 'waiting' END, 'null', '', '', '', '', 0, now(), now()"
            " FROM generate_series(1, 40000) AS i"
        )
        cursor.execute(f"ANALYZE {table}")
    scheduler.start("u-8", "no-input")
    with CaptureQueriesContext(connection) as queries:
        store.claim_due("w", 10, lease=30, tasks=["no-input", "three-steps"])
    (claim_sql,) = [q["sql"] for q in queries if q["sql"].startswith("UPDATE")]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + claim_sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "zart_execution_due" in plan, plan

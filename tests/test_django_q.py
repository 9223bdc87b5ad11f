"""DISPATCH = "django_q": executions run as django-q2 tasks in a real qcluster, Redis broker."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django_q.conf import Conf
from redis.backoff import NoBackoff
from redis.retry import Retry

from demo_project.approval.workflows import approval_task
from tests.approval_helpers import REQUEST
from tests.conftest import ROOT, subprocess_env, wait_until
from tests.services import free_port
from tests.workflows import Approval, lines
from zart_django import clock, dispatch
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRecord
from zart_django.models import Event, Execution, StepResult

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.needs("redis"),
]


@pytest.fixture(autouse=True)
def _django_q_dispatch(settings) -> None:
    settings.ZART = {**settings.ZART, "DISPATCH": "django_q"}


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    clusters: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {
            **subprocess_env(),
            "ZART_DISPATCH": "django_q",
            "ZART_Q_NAME": settings.Q_CLUSTER["name"],
        }
        log = open(tmp_path / f"cluster-{len(clusters)}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "qcluster"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so SIGKILL reaches every process
        )
        clusters.append(proc)
        return proc

    yield start
    for proc in clusters:
        kill_cluster(proc)


def kill_cluster(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait(timeout=10)


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def test_approval_flow_survives_a_killed_cluster(scheduler, job, start_cluster):
    gate = Path(f"{job.log}.hold-second")
    gate.touch()
    cluster = start_cluster()
    scheduler.start("q-1", "three-steps", job)
    wait_until(lambda: f"{job.name} start second" in lines(job.log), what="second step to start")
    kill_cluster(cluster)
    assert {r.name for r in StepResult.objects.filter(execution_id="q-1")} == {"first"}
    gate.unlink()
    wait_until(
        lambda: Execution.objects.get(pk="q-1").scheduled_at < clock.now(), what="lease expiry"
    )
    start_cluster()  # its workers run due work as they start: the execution is reclaimed
    wait_until(lambda: status("q-1") == "waiting", timeout=60, what="the wait for 'go'")
    scheduler.offer_event("q-1", "go", Approval(True, "Quinn"))
    assert scheduler.wait_completion("q-1", timeout=60)["results"][2] == "third ok by Quinn"
    for name in ("first", "second", "third"):
        assert lines(job.log).count(f"{job.name} done {name}") == 1


def test_schedule_for_timers_is_created_once():
    from django_q.models import Schedule

    dispatch.ensure_schedule()
    dispatch.ensure_schedule()
    schedule = Schedule.objects.get(name=dispatch.SCHEDULE_NAME)
    assert schedule.func == dispatch.TASK
    assert schedule.minutes == 1


def redis_down() -> dict:
    """A broker configuration whose Redis is down: nothing listens on its port. (No retries:
    redis-py's default ones only make each failed wake-up take 4 s longer.)"""
    return {"host": "127.0.0.1", "port": free_port(), "db": 0, "retry": Retry(NoBackoff(), 0)}


def test_with_redis_down_starts_events_and_decisions_are_stored_and_run_later(
    scheduler, job, manager, start_cluster, caplog, monkeypatch
):
    """The wake-up is best effort: with the broker down, the caller sees success (the work is
    committed), a warning is logged, and the cluster runs the work once a wake-up gets through
    (the every-minute schedule's, or any later one's)."""
    caplog.set_level(logging.WARNING, logger="zart_django")
    redis_up = Conf.REDIS
    monkeypatch.setattr(Conf, "REDIS", redis_down())
    scheduler.start("q-2", "three-steps", job)
    scheduler.start_for(approval_task, "q-3", REQUEST)
    assert {e.pk: e.status for e in Execution.objects.all()} == {"q-2": "pending", "q-3": "pending"}

    monkeypatch.setattr(Conf, "REDIS", redis_up)
    start_cluster()  # its workers run due work as they start
    wait_until(lambda: status("q-2") == status("q-3") == "waiting", timeout=60, what="both parked")

    monkeypatch.setattr(Conf, "REDIS", redis_down())
    scheduler.offer_event("q-2", "go", Approval(True, "Rhea"))
    decide("q-3", manager, approved=True, comment="while Redis was down")
    assert Event.objects.filter(execution_id="q-2", name="go").exists()
    assert ApprovalRecord.objects.filter(execution_id="q-3", approved=True).exists()
    lost = [
        r for r in caplog.records if r.levelno == logging.WARNING and dispatch.TASK in r.message
    ]
    assert len(lost) == 4, [r.message for r in caplog.records]  # start, start, offer, decide

    monkeypatch.setattr(Conf, "REDIS", redis_up)
    dispatch.enqueue()  # what the schedule does every minute
    assert scheduler.wait_completion("q-2", timeout=60)["results"][2] == "third ok by Rhea"
    assert scheduler.wait_completion("q-3", timeout=60).comment == "while Redis was down"


def test_the_cluster_log_shows_each_state_change_with_the_execution_id(
    scheduler, job, start_cluster, tmp_path
):
    """Without a LOGGING entry for zart_django, its lines go where the cluster's own go."""
    start_cluster()
    scheduler.start("q-log", "failing", job)
    wait_until(lambda: status("q-log") == "failed", timeout=60, what="the execution to fail")
    log = tmp_path / "cluster-0.log"
    wait_until(lambda: "execution q-log: failed" in log.read_text(), what="the failure logged")
    text = log.read_text()
    assert "INFO execution q-log: claimed by " in text
    assert "WARNING execution q-log: step no-retry failed (attempt 1, no retry left)" in text
    assert "ERROR execution q-log: failed: StepFailed: step 'no-retry' failed" in text
    assert "worker " not in text  # a run_due task's own start and stop stay at DEBUG

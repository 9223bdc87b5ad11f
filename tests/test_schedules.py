"""Recurring executions: cron and ``every`` schedules, deterministic occurrence ids, overlap
policies, catch-up, pause/resume (admin and CLI), two workers ticking at once. Time is moved with
the engine clock (``pin``), never slept."""

from __future__ import annotations

import gc
import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management.base import CommandError
from django.db import connection

from tests.approval_helpers import logged_in, make_user, superuser_client
from tests.conftest import wait_until
from tests.test_cli import zart, zart_json
from zart_django import (
    DurableScheduler,
    PayloadError,
    ScheduleNotFound,
    TaskRegistry,
    Worker,
    current_execution_id,
    durable,
    recurrence,
    schedules,
)
from zart_django import clock as engine_clock
from zart_django.models import Execution, Schedule, Status
from zart_django.names import check_name
from zart_django.signals import execution_started
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]

BASE = datetime(2030, 1, 1, tzinfo=UTC)


def pin(moment: datetime) -> None:
    """Set the engine's clock (Python's and the database's) to ``moment``; real time then runs
    on from there."""
    engine_clock.shift(moment - engine_clock.now())


def hourly(overlap: str = "skip") -> TaskRegistry:
    registry = TaskRegistry()

    @durable("hourly", every="1h", overlap=overlap, registry=registry)
    def task() -> None:
        return None

    return registry


def executions(task: str = "hourly") -> list[str]:
    return sorted(Execution.objects.filter(task_name=task).values_list("pk", flat=True))


def row(task: str = "hourly") -> Schedule:
    return Schedule.objects.get(pk=task)


def sync_at(registry: TaskRegistry, moment: datetime) -> None:
    pin(moment)
    schedules.sync(registry)


# -- the schedule itself


def test_cron_ticks_in_its_time_zone_and_every_counts_from_the_epoch():
    berlin = recurrence.make_spec("0 2 * * *", None, "Europe/Berlin", None)
    assert berlin.after(BASE) == datetime(2030, 1, 1, 1, tzinfo=UTC)  # 02:00 CET
    summer = datetime(2030, 7, 1, 12, tzinfo=UTC)
    assert berlin.after(summer) == datetime(2030, 7, 2, 0, tzinfo=UTC)  # 02:00 CEST
    assert berlin.latest(datetime(2030, 1, 1, 1, tzinfo=UTC)) == datetime(2030, 1, 1, 1, tzinfo=UTC)
    quarter = recurrence.make_spec(None, "15m", None, None)
    moment = datetime(2030, 1, 1, 10, 7, 30, tzinfo=UTC)
    assert quarter.latest(moment) == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
    assert quarter.after(moment) == datetime(2030, 1, 1, 10, 15, tzinfo=UTC)


def test_occurrence_ids_are_utc_to_the_second_and_in_the_name_alphabet():
    at = datetime(2026, 11, 26, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert schedules.occurrence_id("nightly-report", at) == "nightly-report@2026-11-26T02:00:00"
    check_name(schedules.occurrence_id("nightly-report", at), "id")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"schedule": "0 2 * *  nonsense"}, "not a cron expression"),
        ({"schedule": "0 2 * * *", "every": "1h"}, "not both"),
        ({"every": "500ms"}, "whole number of seconds"),
        ({"every": "1h", "timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"every": "1h", "overlap": "sometimes"}, "overlap must be one of skip, queue, allow"),
        ({"timezone": "UTC"}, "give schedule= or every="),
    ],
)
def test_bad_schedules_are_refused_when_the_task_is_declared(arguments, message):
    with pytest.raises(ValueError, match=message):
        durable("bad", registry=TaskRegistry(), **arguments)


def test_a_scheduled_task_takes_nothing_or_a_datetime_and_has_a_storable_id():
    with pytest.raises(TypeError, match="annotate it `datetime`"):

        @durable("typed", every="1h", registry=TaskRegistry())
        def typed(count: int) -> None: ...

    with pytest.raises(PayloadError, match="occurrence id"):

        @durable("has space", every="1h", registry=TaskRegistry())
        def spaced() -> None: ...


# -- sync


def test_sync_stores_the_schedule_keeps_its_due_time_and_resets_it_when_the_code_changes():
    sync_at(hourly(), BASE + timedelta(minutes=30))
    stored = row()
    assert (stored.every, stored.timezone, stored.overlap, stored.active) == (
        timedelta(hours=1),
        "UTC",
        "skip",
        True,
    )
    assert stored.next_run_at == BASE + timedelta(hours=1)
    sync_at(hourly(), BASE + timedelta(hours=5))  # a restart: the missed tick is kept due
    assert row().next_run_at == BASE + timedelta(hours=1)
    sync_at(hourly("allow"), BASE + timedelta(hours=5, minutes=10))  # a deploy changed it
    assert (row().overlap, row().next_run_at) == ("allow", BASE + timedelta(hours=6))


def test_a_schedule_removed_from_the_code_is_kept_inactive_and_others_are_left_alone():
    sync_at(hourly(), BASE)
    Schedule.objects.create(task_name="someone-elses", every=timedelta(hours=1), updated_at=BASE)
    unscheduled = TaskRegistry()

    @durable("hourly", registry=unscheduled)
    def task() -> None: ...

    schedules.sync(unscheduled)
    assert (row().active, row("someone-elses").active) == (False, True)
    pin(BASE + timedelta(hours=3))
    assert schedules.tick(hourly()) == []  # inactive: nothing starts until a worker syncs it
    schedules.sync(hourly())
    assert (row().active, row().next_run_at) == (True, BASE + timedelta(hours=4))


# -- ticking


def test_a_due_tick_starts_one_occurrence_given_its_time_in_the_schedule_zone():
    registry = TaskRegistry()
    seen: list[datetime] = []

    @durable("nightly", schedule="0 2 * * *", timezone="Europe/Berlin", registry=registry)
    def nightly(at: datetime) -> str:
        seen.append(at)
        return at.isoformat()

    sync_at(registry, BASE)
    assert schedules.tick(registry) == []
    pin(BASE + timedelta(hours=1, seconds=5))
    assert schedules.tick(registry) == ["nightly@2030-01-01T01:00:00"]
    assert schedules.tick(registry) == []  # ticked: next due the following night
    assert row("nightly").next_run_at == datetime(2030, 1, 2, 1, tzinfo=UTC)
    run_until_idle(registry)
    assert seen == [datetime(2030, 1, 1, 2, tzinfo=ZoneInfo("Europe/Berlin"))]
    assert seen[0].utcoffset() == timedelta(hours=1)


def test_a_worker_down_over_many_ticks_starts_one_occurrence_for_the_latest():
    registry = hourly("allow")
    sync_at(registry, BASE)
    pin(BASE + timedelta(hours=5, minutes=30))
    assert schedules.tick(registry) == ["hourly@2030-01-01T05:00:00"]
    assert row().next_run_at == BASE + timedelta(hours=6)
    assert schedules.tick(registry) == []
    pin(BASE + timedelta(hours=6, minutes=1))
    assert schedules.tick(registry) == ["hourly@2030-01-01T06:00:00"]


def test_overlap_skip_lets_ticks_pass_while_the_previous_occurrence_is_unfinished():
    registry = hourly("skip")
    sync_at(registry, BASE)
    pin(BASE + timedelta(hours=1, minutes=1))
    schedules.tick(registry)  # hourly@01:00, pending: no worker runs it
    pin(BASE + timedelta(hours=2, minutes=1))
    assert schedules.tick(registry) == []
    assert row().next_run_at == BASE + timedelta(hours=3)  # the 02:00 tick is gone
    DurableScheduler(registry).cancel("hourly@2030-01-01T01:00:00")
    pin(BASE + timedelta(hours=2, minutes=30))
    assert schedules.tick(registry) == []
    pin(BASE + timedelta(hours=3, minutes=1))
    assert schedules.tick(registry) == ["hourly@2030-01-01T03:00:00"]


def test_overlap_queue_holds_the_tick_until_the_previous_occurrence_finishes():
    registry = hourly("queue")
    sync_at(registry, BASE)
    pin(BASE + timedelta(hours=1, minutes=1))
    schedules.tick(registry)
    pin(BASE + timedelta(hours=2, minutes=1))
    assert schedules.tick(registry) == []
    assert row().next_run_at == BASE + timedelta(hours=2)  # held, still due
    pin(BASE + timedelta(hours=3, minutes=1))
    assert schedules.tick(registry) == []
    DurableScheduler(registry).cancel("hourly@2030-01-01T01:00:00")
    assert schedules.tick(registry) == ["hourly@2030-01-01T03:00:00"]  # held ticks make one
    assert executions() == ["hourly@2030-01-01T01:00:00", "hourly@2030-01-01T03:00:00"]


def test_overlap_allow_starts_each_tick_regardless():
    registry = hourly("allow")
    sync_at(registry, BASE)
    for hour in (1, 2, 3):
        pin(BASE + timedelta(hours=hour, minutes=1))
        schedules.tick(registry)
    assert executions() == [f"hourly@2030-01-01T0{hour}:00:00" for hour in (1, 2, 3)]
    assert Execution.objects.filter(status=Status.PENDING).count() == 3


def test_an_occurrence_started_by_hand_is_not_started_again_by_the_tick():
    registry = hourly("allow")
    sync_at(registry, BASE)
    DurableScheduler(registry).start("hourly@2030-01-01T01:00:00", "hourly")
    pin(BASE + timedelta(hours=1, minutes=1))
    assert schedules.tick(registry) == []
    assert row().last_occurrence == "hourly@2030-01-01T01:00:00"


# -- pause and resume


def test_cli_lists_pauses_and_resumes_and_a_resume_does_not_catch_up():
    registry = hourly()
    sync_at(registry, BASE)
    listed = zart_json("schedules")
    assert [(s["task"], s["expression"], s["paused"]) for s in listed] == [
        ("hourly", "every 1:00:00", False)
    ]
    assert "hourly: paused" in zart("schedules", "pause", "hourly")
    pin(BASE + timedelta(hours=3, minutes=10))
    assert schedules.tick(registry) == []
    resumed = zart_json("schedules", "resume", "hourly")
    assert (resumed["paused"], resumed["next_run_at"]) == (False, "2030-01-01 04:00:00+00:00")
    assert schedules.tick(registry) == []
    assert "hourly" in zart("schedules") and "every 1:00:00" in zart("schedules", "list")


def test_cli_refuses_an_unknown_schedule_and_a_missing_name():
    with pytest.raises(CommandError) as unknown:
        zart("schedules", "pause", "nope")
    assert unknown.value.returncode == 3 and "no schedule for task 'nope'" in str(unknown.value)
    with pytest.raises(CommandError) as missing:
        zart("schedules", "resume")
    assert missing.value.returncode == 2
    with pytest.raises(ScheduleNotFound):
        schedules.resume("nope")


def test_admin_pauses_and_resumes_with_the_change_permission_only():
    sync_at(hourly(), BASE)
    page = "/admin/zart_django/schedule/"
    clerk = make_user("viewer", "zart_django.view_schedule")
    clerk.is_staff = True
    clerk.save()
    viewer = logged_in(clerk)
    assert "every 1:00:00" in viewer.get(page).content.decode()
    viewer.post(page, {"action": "pause_selected", "_selected_action": ["hourly"]})
    assert row().paused is False
    admin = superuser_client()
    admin.post(page, {"action": "pause_selected", "_selected_action": ["hourly"]})
    assert row().paused is True
    admin.post(page, {"action": "resume_selected", "_selected_action": ["hourly"]})
    assert row().paused is False


# -- two workers


@pytest.mark.django_db(transaction=True)
def test_two_workers_ticking_every_second_for_a_minute_start_each_tick_once():
    registry = TaskRegistry()
    ran: list[str] = []
    started: list[str] = []

    @durable("every-second", every="1s", overlap="allow", registry=registry)
    def every_second() -> None:
        ran.append(current_execution_id())

    def count(sender: object, execution_id: str, **kwargs: object) -> None:
        if execution_id.startswith("every-second@"):
            started.append(execution_id)

    execution_started.connect(count)
    start = BASE + timedelta(milliseconds=50)
    sync_at(registry, start)
    workers = [Worker(registry, concurrency=2, poll_interval=0.02) for _ in range(2)]
    threads = [threading.Thread(target=run_then_close, args=(worker,)) for worker in workers]
    try:
        for thread in threads:
            thread.start()
        expected = []
        for second in range(1, 61):
            expected.append(
                schedules.occurrence_id("every-second", BASE + timedelta(seconds=second))
            )
            pin(start + timedelta(seconds=second))
            wait_until(lambda: Execution.objects.filter(pk=expected[-1]).exists(), timeout=10)
        schedules.pause("every-second")
        wait_until(
            lambda: (
                Execution.objects.filter(task_name="every-second")
                .exclude(status=Status.COMPLETED)
                .count()
                == 0
            ),
            timeout=20,
        )
    finally:
        execution_started.disconnect(count)
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(timeout=20)
        gc.collect()  # the pool threads' connections, so the test database can be dropped
    assert executions("every-second") == expected
    assert sorted(started) == expected
    assert sorted(ran) == expected


def run_then_close(worker: Worker) -> None:
    try:
        worker.run()
    finally:
        connection.close()


def test_the_demo_nightly_digest_runs_at_two_in_berlin():
    from demo_project.approval.scheduled import nightly_digest

    registry = TaskRegistry()
    registry.register(nightly_digest.name, nightly_digest)
    sync_at(registry, BASE)
    pin(BASE + timedelta(hours=1, minutes=1))
    assert schedules.tick(registry) == ["nightly-digest@2030-01-01T01:00:00"]
    run_until_idle(registry)
    output = DurableScheduler(registry).get("nightly-digest@2030-01-01T01:00:00").output
    assert output == {"day": "2029-12-31", "approved": 0, "rejected": 0}

"""Recorded values (``now``, ``uuid4``, ``random``, ``capture``): recorded on first run, returned
unchanged on every replay, in-process and across a worker SIGKILLed after recording them."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.values_workflows import (
    SEEN_QUOTES,
    Quote,
    recorded_values,
    values_failing,
    values_in_step,
    values_occurrences,
)
from tests.workflows import Approval, Job, lines
from zart_django import capture, clock, now, random, uuid4
from zart_django.models import Execution, StepResult
from zart_django.testing import run_until_idle


def logged_values(job: Job) -> list[dict]:
    prefix = f"{job.name} values "
    return [json.loads(line[len(prefix) :]) for line in lines(job.log) if line.startswith(prefix)]


def value_rows(execution_id: str) -> list[tuple[str, str]]:
    rows = StepResult.objects.filter(execution_id=execution_id, kind="value")
    return [(row.name, row.status) for row in rows.order_by("position")]


@pytest.mark.django_db
class TestInProcess:
    def test_replays_return_the_recorded_values(self, scheduler, job):
        scheduler.start_for(recorded_values, "v-1", job)
        run_until_idle()
        assert scheduler.get("v-1").status == "waiting"
        scheduler.offer_event("v-1", "go", Approval(True, "Ann"))
        run_until_idle()
        output = scheduler.wait_completion("v-1", timeout=1)
        first_run, replay = logged_values(job)
        assert first_run == replay == output
        assert datetime.fromisoformat(output["now"]) <= clock.now()
        assert uuid.UUID(output["uuid"]).version == 4
        assert 0 <= output["random"] < 1
        assert value_rows("v-1") == [
            ("now", "completed"),
            ("uuid4", "completed"),
            ("random", "completed"),
            ("token", "completed"),
            ("quote", "completed"),
        ]

    def test_each_call_is_its_own_occurrence_and_capture_is_typed(self, scheduler):
        SEEN_QUOTES.clear()
        scheduler.start_for(values_occurrences, "v-2")
        run_until_idle()
        scheduler.offer_event("v-2", "go")
        run_until_idle()
        assert SEEN_QUOTES == [[Quote(0, "EUR"), Quote(0, "EUR")]] * 2
        first, second = scheduler.wait_completion("v-2", timeout=1)
        assert first != second
        assert [name for name, _ in value_rows("v-2")] == ["quote", "quote#2", "uuid4", "uuid4#2"]

    def test_outside_a_durable_function_or_inside_a_step_values_are_fresh(self, scheduler):
        assert abs((now() - clock.now()).total_seconds()) < 60
        assert uuid4() != uuid4()
        assert random() != random()
        assert capture("plain", lambda: 7) == 7
        scheduler.start_for(values_in_step, "v-3")
        run_until_idle()
        first, second = scheduler.wait_completion("v-3", timeout=1)
        assert first != second
        assert value_rows("v-3") == []

    def test_a_failing_capture_records_nothing(self, scheduler):
        scheduler.start_for(values_failing, "v-4")
        run_until_idle()
        assert scheduler.get("v-4").status == "failed"
        assert "ZeroDivisionError" in scheduler.get("v-4").error
        assert value_rows("v-4") == []

    def test_a_value_name_outside_the_alphabet_is_refused(self):
        with pytest.raises(ValueError, match="value name"):
            capture("a b", lambda: 1)


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_values_survive_a_worker_killed_after_recording_them(scheduler, job, start_worker):
    gate = Path(f"{job.log}.hold-after-values")
    gate.touch()
    scheduler.start("v-k", "recorded-values", job)
    worker = start_worker()
    wait_until(lambda: logged_values(job), what="the values to be recorded")
    worker.kill()
    assert [name for name, _ in value_rows("v-k")] == ["now", "uuid4", "random", "token", "quote"]
    gate.unlink()
    start_worker()
    wait_until(lambda: Execution.objects.get(pk="v-k").status == "waiting", what="the wait")
    scheduler.offer_event("v-k", "go", Approval(True, "Ann"))
    output = scheduler.wait_completion("v-k", timeout=30)
    runs = logged_values(job)
    assert len(runs) >= 3  # the killed run, the run that parked, the run that finished
    assert all(values == output for values in runs)
    assert Execution.objects.get(pk="v-k").recoveries == 1

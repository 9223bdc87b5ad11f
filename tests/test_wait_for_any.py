"""``wait_for_any``: the first of several events wins, by the order the database stored them in;
the others stay in the inbox; the choice is recorded, in-process and across a worker SIGKILLed
after making it."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from django.db import connections

from tests.conftest import wait_until
from tests.values_workflows import both_of, first_of, first_of_or_late, first_of_reserved
from tests.workflows import Approval, Job, lines
from zart_django import EventExpired
from zart_django.models import Event, Execution, StepResult
from zart_django.testing import advance_time, run_until_idle

YES = Approval(True, "Ann")


def wait_row(execution_id: str) -> StepResult:
    return StepResult.objects.get(execution_id=execution_id, kind="any")


def chose(job: Job) -> list[str]:
    return [line for line in lines(job.log) if " chose " in line]


@pytest.mark.django_db
class TestInProcess:
    def test_parks_on_all_names_and_the_first_offered_resumes_it(self, scheduler, job):
        scheduler.start_for(first_of, "w-1", job)
        run_until_idle()
        info = scheduler.get("w-1")
        assert (info.status, info.waiting_on) == ("waiting", "approved|withdrawn")
        scheduler.offer_event("w-1", "withdrawn", "changed my mind")
        scheduler.offer_event("w-1", "approved", YES)  # kept in the inbox
        run_until_idle()
        assert scheduler.wait_completion("w-1", timeout=1) == ["withdrawn", "changed my mind"]
        row = wait_row("w-1")
        assert (row.name, row.status) == ("approved|withdrawn", "completed")
        assert row.result == {"name": "withdrawn", "payload": "changed my mind"}
        assert Event.objects.filter(execution_id="w-1").count() == 2

    def test_events_offered_before_the_wait_count_and_the_others_wait_for_a_later_one(
        self, scheduler, job
    ):
        scheduler.start_for(both_of, "w-2", job)
        scheduler.offer_event("w-2", "approved", YES)
        scheduler.offer_event("w-2", "withdrawn", "too late")
        run_until_idle()
        one, other = scheduler.output("w-2")
        assert one == ["approved", {"approved": True, "reviewer": "Ann"}]
        assert other == ["withdrawn", "too late"]

    def test_the_payload_is_rebuilt_as_the_declared_type(self, scheduler, job):
        scheduler.start_for(first_of, "w-3", job)
        run_until_idle()
        scheduler.offer_event("w-3", "approved", YES)
        run_until_idle()
        name, payload = scheduler.wait_completion("w-3", timeout=1)
        assert name == "approved"
        assert payload == {"approved": True, "reviewer": "Ann"}  # stored JSON of an Approval
        assert "chose approved" in chose(job)[0]

    def test_times_out_and_an_event_after_the_deadline_is_refused(self, scheduler, job):
        scheduler.start_for(first_of_or_late, "w-4", job)
        run_until_idle()
        advance_time("121s")
        with pytest.raises(EventExpired):
            scheduler.offer_event("w-4", "approved", YES)  # the wait is past its deadline
        run_until_idle()
        assert scheduler.wait_completion("w-4", timeout=1) == (
            "timed out: no event 'approved|withdrawn' arrived before the deadline"
        )
        assert wait_row("w-4").status == "timed_out"
        assert not Event.objects.filter(execution_id="w-4").exists()

    def test_a_name_that_is_only_part_of_an_expired_wait_s_names_is_kept(self, scheduler, job):
        scheduler.start_for(first_of_or_late, "w-4b", job)
        run_until_idle()
        advance_time("121s")
        for name in ("approve", "drawn", "with"):
            scheduler.offer_event("w-4b", name, None)  # not one of its names: the inbox keeps it
        with pytest.raises(EventExpired):
            scheduler.offer_event("w-4b", "withdrawn", "late")
        names = set(Event.objects.filter(execution_id="w-4b").values_list("name", flat=True))
        assert names == {"approve", "drawn", "with"}

    def test_an_event_that_arrived_before_the_expiry_wins_over_it(self, scheduler, job):
        scheduler.start_for(first_of_or_late, "w-5", job)
        run_until_idle()
        scheduler.offer_event("w-5", "withdrawn", "in time")
        advance_time("121s")
        run_until_idle()
        assert scheduler.wait_completion("w-5", timeout=1) == "withdrawn"

    def test_a_reserved_name_is_refused(self, scheduler, job):
        scheduler.start_for(first_of_reserved, "w-6", job)
        run_until_idle()
        info = scheduler.get("w-6")
        assert info.status == "failed"
        assert "EventReserved" in info.error and "approval:manager" in info.error
        assert not StepResult.objects.filter(execution_id="w-6").exists()

    def test_a_restart_waits_again(self, scheduler, job):
        scheduler.start_for(first_of, "w-7", job)
        run_until_idle()
        scheduler.offer_event("w-7", "withdrawn", "no")
        run_until_idle()
        scheduler.restart("w-7")
        run_until_idle()
        assert scheduler.get("w-7").waiting_on == "approved|withdrawn"  # a new run asks again


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
class TestWithWorkers:
    def test_two_offers_at_once_the_one_stored_first_wins(self, scheduler, job):
        for n in range(5):
            execution_id = f"w-race-{n}"
            scheduler.start_for(first_of, execution_id, Job(log=job.log, name=execution_id))
            run_until_idle()
            barrier = threading.Barrier(2)

            def offer(
                name: str,
                payload: object,
                execution_id: str = execution_id,
                barrier: threading.Barrier = barrier,
            ) -> None:
                barrier.wait()
                try:
                    scheduler.offer_event(execution_id, name, payload)
                finally:
                    connections.close_all()

            threads = [
                threading.Thread(target=offer, args=("approved", YES)),
                threading.Thread(target=offer, args=("withdrawn", "no")),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            run_until_idle()
            stored_first = Event.objects.filter(execution_id=execution_id).order_by("pk")[0].name
            assert scheduler.wait_completion(execution_id, timeout=5)[0] == stored_first

    def test_the_choice_survives_a_worker_killed_after_making_it(
        self, scheduler, job, start_worker
    ):
        gate = Path(f"{job.log}.hold-after-choice")
        gate.touch()
        scheduler.start("w-k", "first-of", job)
        worker = start_worker()
        wait_until(lambda: Execution.objects.get(pk="w-k").status == "waiting", what="the wait")
        scheduler.offer_event("w-k", "withdrawn", "changed my mind")
        wait_until(lambda: chose(job), what="the choice")
        scheduler.offer_event("w-k", "approved", YES)  # too late: the choice is recorded
        worker.kill()
        assert wait_row("w-k").result["name"] == "withdrawn"
        gate.unlink()
        start_worker()
        output = scheduler.wait_completion("w-k", timeout=30)
        assert output == ["withdrawn", "changed my mind"]
        assert [line.split()[-1] for line in chose(job)] == ["withdrawn", "withdrawn"]
        assert Execution.objects.get(pk="w-k").recoveries == 1

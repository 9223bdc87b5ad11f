"""Child executions (issue 11), in-process with ``zart_django.testing``: start_child,
wait_for_child, run_child, the child's end delivered to its parent, and the cancel cascade."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from tests.approval_helpers import make_user, superuser_client
from tests.child_workflows import Child, Family, Nest, nest, parent_of_one
from tests.workflows import Job, lines
from zart_django import (
    DurableScheduler,
    EventReserved,
    ExecutionAlreadyExists,
    ExecutionFinished,
    store,
)
from zart_django.models import Event, Execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def status(execution_id: str) -> str:
    return Execution.objects.get(pk=execution_id).status


def family(job: Job, *, wait_first: bool = False, **options: Any) -> Family:
    parent = {k: options.pop(k) for k in ("task", "timeout") if k in options}
    child = Child(Job(log=job.log, name=f"{job.name}-child"), **options)
    return Family(job, child, wait_first, **parent)


def count(job: Job, line: str) -> int:
    return lines(job.log).count(line)


class TestWaitForChild:
    def test_child_ends_before_the_parent_waits(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-1", family(job, wait_first=True))
        run_until_idle()
        assert status("p-1") == "waiting"  # on "go"; the child ran meanwhile
        assert status("job-child") == "completed"
        assert Event.objects.filter(execution_id="p-1", name="child:job-child").exists()
        scheduler.offer_event("p-1", "go")
        run_until_idle()
        output = scheduler.wait_completion("p-1", timeout=1)
        assert output == {
            "built": ["child-first ok", "child-second ok"],
            "typed": "Built",
            "used": "used 2 parts",
        }

    def test_parent_parks_then_the_child_ends(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-2", family(job, wait=True))
        run_until_idle()
        parent = scheduler.get("p-2")
        assert (parent.status, parent.waiting_on) == ("waiting", "child:job-child")
        assert status("job-child") == "waiting"
        scheduler.offer_event("job-child", "finish")
        run_until_idle()
        assert scheduler.wait_completion("p-2", timeout=1)["typed"] == "Built"
        assert [s.name for s in scheduler.get("p-2").steps] == [
            "start-child:job-child",
            "child:job-child",
            "parent-after",
        ]

    def test_child_failure_raises_child_failed_naming_it_and_its_error(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-3", family(job, fail=True))
        run_until_idle()
        assert status("job-child") == "failed"
        output = scheduler.wait_completion("p-3", timeout=1)
        assert output["child"] == "job-child"
        assert output["status"] == "failed"
        assert output["failed"].startswith("child execution 'job-child' ended failed: ")
        assert "job-child cannot build" in output["failed"]

    def test_cancelled_child_raises_child_failed(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-4", family(job, wait=True))
        run_until_idle()
        scheduler.cancel("job-child")
        run_until_idle()
        output = scheduler.wait_completion("p-4", timeout=1)
        assert (output["status"], output["child"]) == ("cancelled", "job-child")

    def test_timed_out_child_raises_child_failed(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-10", family(job, wait=True, task="slow-child"))
        run_until_idle()
        advance_time("2m")
        run_until_idle()
        output = scheduler.wait_completion("p-10", timeout=1)
        assert (output["status"], output["child"]) == ("timed_out", "job-child")

    def test_the_wait_times_out_and_the_child_goes_on(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-11", family(job, wait=True, timeout="1m"))
        run_until_idle()
        advance_time("2m")
        run_until_idle()
        assert status("p-11") == "failed"
        error = scheduler.get("p-11").error
        assert error.startswith("EventTimeout: no event 'child:job-child' arrived")
        assert status("job-child") == "waiting"
        scheduler.offer_event("job-child", "finish")
        run_until_idle()
        assert status("job-child") == "completed"

    def test_replay_returns_the_same_child_and_starts_nothing_twice(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-5", family(job, wait=True))
        run_until_idle()
        scheduler.offer_event("job-child", "finish")
        run_until_idle()  # the parent replays start_child after the child's end woke it
        assert scheduler.wait_completion("p-5", timeout=1)["typed"] == "Built"
        assert Execution.objects.filter(parent_id="p-5").count() == 1
        assert count(job, "job-child start child-first") == 1
        assert count(job, "job-child start child-second") == 1

    def test_the_child_records_its_parent_and_who_started_it(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-6", family(job, wait=True), started_by="bob")
        run_until_idle()
        child = scheduler.get("job-child")
        assert (child.parent, child.started_by) == ("p-6", "bob")
        assert scheduler.get("p-6").children == ["job-child"]
        assert scheduler.get("p-6").parent is None

    def test_restart_of_the_parent_takes_the_finished_child_again(self, scheduler, job):
        scheduler.start_for(parent_of_one, "p-7", family(job))
        run_until_idle()
        first = scheduler.wait_completion("p-7", timeout=1)
        scheduler.restart("p-7")
        run_until_idle()
        assert scheduler.wait_completion("p-7", timeout=1) == first
        assert count(job, "job-child start child-first") == 1

    def test_a_parent_that_does_not_wait_ends_and_its_child_goes_on(self, scheduler, job):
        scheduler.start("p-8", "leaves-its-child", job)
        run_until_idle()
        assert scheduler.wait_completion("p-8", timeout=1) == "job-child"
        scheduler.offer_event("job-child", "finish")
        run_until_idle()
        assert status("job-child") == "completed"
        assert not Event.objects.filter(execution_id="p-8", name="child:job-child").exists()

    def test_deleting_the_parent_keeps_the_child(self, scheduler, job):
        scheduler.start("p-9", "leaves-its-child", job)
        run_until_idle()
        assert scheduler.delete(["p-9"])["executions"] == 1
        assert scheduler.get("job-child").parent is None
        scheduler.offer_event("job-child", "finish")
        run_until_idle()
        assert status("job-child") == "completed"


class TestRefusals:
    def test_an_id_with_a_slash_is_refused(self, scheduler):
        scheduler.start("b-1", "bad-child-id", "a/b")
        run_until_idle()
        refusal = scheduler.wait_completion("b-1", timeout=1)
        assert "child execution id 'a/b' has '/'" in refusal
        assert not Execution.objects.filter(parent_id="b-1").exists()

    def test_an_id_too_long_for_its_start_step_is_refused(self, scheduler):
        scheduler.start("b-2", "bad-child-id", "c" * 189)
        run_until_idle()
        assert "at most 188" in scheduler.wait_completion("b-2", timeout=1)

    def test_nobody_offers_a_child_event(self, scheduler, job):
        scheduler.start_for(parent_of_one, "b-3", family(job, wait=True))
        run_until_idle()
        with pytest.raises(EventReserved):
            scheduler.offer_event("b-3", "child:job-child", {"status": "completed"})
        assert status("b-3") == "waiting"

    def test_waiting_for_an_execution_it_did_not_start_fails_clearly(self, scheduler, job):
        scheduler.start("other", "leaves-its-child", job)
        scheduler.start("b-4", "waits-for-a-stranger", "other")
        run_until_idle()
        assert status("b-4") == "failed"
        assert "NotAChild: execution 'other' is not a child of 'b-4'" in scheduler.get("b-4").error

    def test_an_id_taken_by_a_top_level_execution_fails_the_start_step(self, scheduler, job):
        data = family(job)
        scheduler.start("job-child", "child-build", data.child)
        scheduler.start_for(parent_of_one, "b-5", data)
        run_until_idle()
        assert status("b-5") == "failed"
        assert "already exists as a top-level execution" in scheduler.get("b-5").error
        store.create_execution("c-1", "child-build", None, None, parent_id="b-5")
        with pytest.raises(ExecutionAlreadyExists, match="already exists as a child of 'b-5'"):
            store.create_execution("c-1", "child-build", None, None)


class TestCancel:
    def test_cancelling_a_parent_cancels_its_descendants(self, scheduler, job):
        scheduler.start_for(nest, "n", Nest(job, 2))
        run_until_idle()
        assert [status(i) for i in ("n", "job-2", "job-1")] == ["waiting"] * 3
        scheduler.cancel("n")
        assert [status(i) for i in ("n", "job-2", "job-1")] == ["cancelled"] * 3
        assert scheduler.get("job-1").error == "cancelled with its ancestor 'n'"
        with pytest.raises(ExecutionFinished):
            scheduler.offer_event("job-1", "finish")
        assert run_until_idle() == 0

    def test_cancelling_a_middle_child_fails_the_wait_of_its_parent(self, scheduler, job):
        scheduler.start_for(nest, "m", Nest(job, 2))
        run_until_idle()
        scheduler.cancel("job-2")
        assert (status("job-2"), status("job-1")) == ("cancelled", "cancelled")
        run_until_idle()
        assert status("m") == "failed"
        assert "ChildFailed: child execution 'job-2' ended cancelled" in scheduler.get("m").error

    def test_finished_children_stay_as_they_are(self, scheduler, job):
        scheduler.start_for(parent_of_one, "f", family(job, wait_first=True))
        run_until_idle()
        scheduler.cancel("f")
        assert (status("f"), status("job-child")) == ("cancelled", "completed")


class TestScreens:
    def test_the_admin_page_links_the_parent_and_lists_the_children(self, job):
        DurableScheduler().start_for(parent_of_one, "s-1", family(job, wait=True))
        run_until_idle()
        client = superuser_client()
        parent = client.get("/admin/zart_django/execution/s-1/change/").content.decode()
        child_url = "/admin/zart_django/execution/job-child/change/"
        assert f'<a href="{child_url}">job-child</a> (Waiting)' in parent
        child = client.get(child_url).content.decode()
        assert '<a href="/admin/zart_django/execution/s-1/change/">s-1</a>' in child

    def test_the_api_detail_has_parent_and_children_ids(self, job):
        DurableScheduler().start_for(parent_of_one, "s-2", family(job, wait=True))
        run_until_idle()
        client = APIClient()
        client.force_authenticate(make_user("ops", "zart_django.view_execution"))
        parent = client.get("/api/executions/s-2/").json()
        assert (parent["parent"], parent["children"]) == (None, ["job-child"])
        child = client.get("/api/executions/job-child/").json()
        assert (child["parent"], child["children"]) == ("s-2", [])

    def test_the_api_refuses_to_offer_a_child_event(self, job):
        DurableScheduler().start_for(parent_of_one, "s-3", family(job, wait=True))
        run_until_idle()
        client = APIClient()
        client.force_authenticate(make_user("ops", "zart_django.add_event"))
        answer = client.post("/api/executions/s-3/events/child:job-child/", {}, format="json")
        assert answer.status_code == 403
        assert "child execution's end" in answer.json()["detail"]
        assert status("s-3") == "waiting"


def test_a_failed_child_restarted_is_taken_by_a_rerun_of_its_parent(scheduler, job):
    """The parent takes a child's first end; to use a later one, rerun it from the wait."""
    data = family(job, fail=True)
    scheduler.start_for(parent_of_one, "r-1", data)
    run_until_idle()
    assert scheduler.wait_completion("r-1", timeout=1)["status"] == "failed"
    scheduler.restart("job-child", Child(data.child.job))
    run_until_idle()
    assert scheduler.wait_completion("r-1", timeout=1)["status"] == "failed"  # the first end
    scheduler.rerun("r-1", from_step="child:job-child")
    run_until_idle()
    assert scheduler.wait_completion("r-1", timeout=1)["typed"] == "Built"
    assert Execution.objects.filter(parent_id="r-1").count() == 1


def test_zart_show_names_the_parent_and_the_children(job):
    DurableScheduler().start_for(parent_of_one, "z-1", family(job, wait=True))
    run_until_idle()
    out = StringIO()
    call_command("zart", "show", "z-1", stdout=out)
    assert "Children:   job-child" in out.getvalue()
    out = StringIO()
    call_command("zart", "show", "job-child", "--json", stdout=out)
    shown = json.loads(out.getvalue())
    assert (shown["parent"], shown["children"]) == ("z-1", [])

"""Retention: purging finished executions (decisions kept), ZART["RETENTION"] applied by workers,
deleting from the admin, and an id reused after a purge starting clean."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test import Client

from tests.approval_helpers import logged_in, make_user, start_parked, superuser_client
from tests.conftest import wait_until
from zart_django import DurableScheduler, PayloadError
from zart_django.approvals import ApprovalAlreadyDecided, decide, find_request
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.checks import check_settings
from zart_django.clock import now
from zart_django.models import Event, Execution, StepResult
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


def decided_and_done(execution_id: str, manager, approved: bool = True) -> ApprovalRecord:
    """A demo approval execution, decided and run to its end."""
    start_parked(execution_id)
    record = decide(execution_id, manager, approved=approved, comment=f"on {execution_id}")
    run_until_idle()
    assert DurableScheduler().get(execution_id).status == "completed"
    return record


def ids() -> list[str]:
    return sorted(Execution.objects.values_list("pk", flat=True))


class TestPurge:
    def test_old_finished_executions_go_with_their_rows_and_their_decisions_stay(
        self, scheduler, manager, job
    ):
        record = decided_and_done("old-1", manager)
        scheduler.start("old-2", "no-input")
        scheduler.start("old-parked", "three-steps", job)
        run_until_idle()
        assert scheduler.get("old-parked").status == "waiting"
        scheduler.start("old-cancelled", "no-input")
        scheduler.cancel("old-cancelled")
        advance_time("31d")
        scheduler.start("new-1", "no-input")
        run_until_idle()
        start_parked("new-parked")

        expected = scheduler.purge("30d", dry_run=True)
        assert ids() == ["new-1", "new-parked", "old-1", "old-2", "old-cancelled", "old-parked"]
        deleted = scheduler.purge("30d")

        assert deleted == expected
        assert deleted["executions"] == 3 and deleted["approval_requests"] == 1
        assert deleted["step_results"] == 4 and deleted["events"] == 1  # with approval-opened
        assert ids() == ["new-1", "new-parked", "old-parked"]
        assert not StepResult.objects.filter(execution_id="old-1").exists()
        assert not Event.objects.filter(execution_id="old-1").exists()
        assert list(ApprovalRecord.objects.values_list("pk", "comment")) == [
            (record.pk, "on old-1")
        ]
        assert scheduler.purge("30d") == {}

    def test_status_filter_and_batches(self, scheduler):
        for n in range(5):
            scheduler.start(f"done-{n}", "no-input")
        run_until_idle()
        scheduler.start("gone-wrong", "failing", {"log": "/dev/null"})
        run_until_idle()
        assert scheduler.get("gone-wrong").status == "failed"
        advance_time("2d")
        assert scheduler.purge("1d", statuses=["failed"]) == {
            "executions": 1,
            "step_results": 1,
        }
        assert scheduler.purge("1d", batch_size=2)["executions"] == 5
        assert ids() == []

    @pytest.mark.parametrize("status", ["waiting", "running", "pending", "nope"])
    def test_only_finished_statuses_can_be_purged(self, scheduler, status):
        with pytest.raises(PayloadError, match="only finished ones"):
            scheduler.purge("1d", statuses=[status])

    def test_a_bad_duration_is_refused(self, scheduler):
        with pytest.raises(PayloadError, match="not a duration"):
            scheduler.purge("thirty days")


@pytest.mark.django_db(transaction=True)
def test_purge_skips_a_finished_execution_another_transaction_holds(scheduler):
    """A purge beside a writer (a retry reopening a failed execution, say) never waits for it and
    never deletes what it holds: on PostgreSQL the row is skipped (SKIP LOCKED)."""
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serializes the purge and the writer on the file lock")
    scheduler.start("held", "no-input")
    scheduler.start("free", "no-input")
    run_until_idle()
    advance_time("2d")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with transaction.atomic():
            list(Execution.objects.select_for_update().filter(pk="held"))
            locked.set()
            release.wait(10)
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        assert scheduler.purge("1d")["executions"] == 1
    finally:
        release.set()
        holder.join(10)
    assert ids() == ["held"]


class TestReusedId:
    def test_an_id_reused_after_a_purge_gets_a_fresh_decidable_request(self, scheduler, manager):
        old = decided_and_done("reused", manager, approved=False)
        advance_time("2d")
        scheduler.purge("1d")
        start_parked("reused")

        request = find_request("reused")
        assert request.record is None and request.outcome == "pending"
        new = decide("reused", manager, approved=True, comment="second time")
        assert find_request("reused").record == new
        with pytest.raises(ApprovalAlreadyDecided, match="already approved"):
            decide("reused", manager, approved=False)
        run_until_idle()
        assert scheduler.wait_completion("reused", timeout=1).decision == "approved"
        assert set(ApprovalRecord.objects.values_list("pk", "approved")) == {
            (old.pk, False),
            (new.pk, True),
        }

    def test_a_record_written_before_records_named_their_request_still_decides_it(self, manager):
        """Records from before migration 0004 name no request: they decide the request of their
        execution and event that was made before them, never a later one with the same id."""
        start_parked("legacy")
        request = find_request("legacy")

        def legacy_record(decided_at: datetime) -> ApprovalRecord:
            return ApprovalRecord.objects.create(
                execution_id="legacy",
                task_name="approval-task",
                event=request.event,
                approved=True,
                reviewer="alice",
                source="code",
                decided_at=decided_at,
            )

        legacy_record(request.created_at - timedelta(days=1))  # on an earlier "legacy"
        assert find_request("legacy").record is None
        current = legacy_record(now())
        assert find_request("legacy").record == current
        assert [r.record for r in ApprovalRequest.objects.with_decisions()] == [current]
        with pytest.raises(ApprovalAlreadyDecided):
            decide("legacy", manager, approved=False)


class TestAdminDelete:
    PAGE = "/admin/zart_django/execution/{}/delete/"

    @pytest.fixture
    def deleter(self) -> Client:
        user = make_user(
            "deleter", "zart_django.view_execution", "zart_django.delete_execution", staff=True
        )
        return logged_in(user)

    def test_a_finished_execution_with_a_request_is_deleted_and_its_decision_kept(
        self, manager, deleter
    ):
        record = decided_and_done("adm-1", manager)
        page = deleter.get(self.PAGE.format("adm-1"))
        assert page.status_code == 200 and "Approval request" in page.content.decode()
        response = deleter.post(self.PAGE.format("adm-1"), {"post": "yes"})
        assert response.status_code == 302
        assert ids() == [] and not ApprovalRequest.objects.exists()
        assert list(ApprovalRecord.objects.all()) == [record]

    def test_an_unfinished_execution_cannot_be_deleted(self, deleter):
        start_parked("adm-2")
        assert deleter.get(self.PAGE.format("adm-2")).status_code == 403
        assert deleter.post(self.PAGE.format("adm-2"), {"post": "yes"}).status_code == 403
        assert ids() == ["adm-2"]

    def test_bulk_delete_of_finished_ones_works_and_a_selection_with_others_is_refused(
        self, scheduler, deleter
    ):
        for execution_id in ("adm-3", "adm-4"):
            scheduler.start(execution_id, "no-input")
        run_until_idle()
        start_parked("adm-5")
        action = {"action": "delete_selected", "_selected_action": ["adm-3", "adm-5"]}
        confirm = deleter.post("/admin/zart_django/execution/", action).content.decode()
        assert "unfinished executions (cancel them first): adm-5" in confirm
        refused = deleter.post("/admin/zart_django/execution/", {**action, "post": "yes"})
        assert refused.status_code == 403
        assert ids() == ["adm-3", "adm-4", "adm-5"]
        action["_selected_action"] = ["adm-3", "adm-4"]
        deleter.post("/admin/zart_django/execution/", {**action, "post": "yes"})
        assert ids() == ["adm-5"]

    def test_without_the_delete_permission_it_is_refused(self, scheduler):
        scheduler.start("adm-6", "no-input")
        run_until_idle()
        client = logged_in(make_user("viewer", "zart_django.view_execution", staff=True))
        assert client.post(self.PAGE.format("adm-6"), {"post": "yes"}).status_code == 403
        assert ids() == ["adm-6"]


def test_decisions_of_purged_executions_stay_readable(scheduler, manager):
    record = decided_and_done("read-1", manager)
    advance_time("2d")
    scheduler.purge("1d")
    client = superuser_client()
    listing = client.get("/admin/zart_approvals/approvalrecord/?q=read-1")
    assert listing.status_code == 200 and "read-1" in listing.content.decode()
    page = client.get(f"/admin/zart_approvals/approvalrecord/{record.pk}/change/")
    assert page.status_code == 200 and "on read-1" in page.content.decode()
    assert client.get("/approvals/history/").status_code == 200
    assert client.get("/approvals/read-1/").status_code == 404
    assert client.get("/admin/zart_django/execution/read-1/change/").status_code == 302


def test_the_admin_shows_only_this_executions_decisions(scheduler, manager):
    decided_and_done("twice", manager, approved=False)
    advance_time("2d")
    scheduler.purge("1d")
    start_parked("twice")
    client = superuser_client()
    page = client.get("/admin/zart_django/execution/twice/change/").content.decode()
    assert 'value="approve"' in page
    assert "on twice" not in page


class TestRetentionSetting:
    def test_off_by_default_and_durations_accepted(self, settings):
        settings.ZART = {}
        assert check_settings() == []
        for value in ("30d", "12h", timedelta(days=1), 3600, None):
            settings.ZART = {"RETENTION": value}
            assert check_settings() == [], value

    @pytest.mark.parametrize("value", ["thirty days", "0s", -5, True, [1]])
    def test_anything_else_is_refused(self, settings, value):
        settings.ZART = {"RETENTION": value}
        assert [e.id for e in check_settings()] == ["zart_django.E005"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(60)
def test_a_worker_applies_retention(scheduler, start_worker, monkeypatch):
    """A real worker with RETENTION = 1d deletes what finished over a day ago, nothing else."""
    for execution_id in ("stale", "fresh"):
        scheduler.start(execution_id, "no-input")
    start_parked("parked")
    run_until_idle()
    Execution.objects.filter(pk__in=["stale", "parked"]).update(
        finished_at=now() - timedelta(days=2), created_at=now() - timedelta(days=2)
    )
    monkeypatch.setenv("ZART_TEST_RETENTION", "1d")
    worker = start_worker()
    wait_until(lambda: ids() == ["fresh", "parked"], timeout=30, what="the stale execution purged")
    assert worker.terminate() == 0
    assert "retention deleted 1 executions" in worker.output()

"""``wait_for_approval`` and ``decide``: requests, permissions, the audit record, and resuming."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from demo_project.approval.workflows import ApprovalOutput, approval_task
from tests.approval_helpers import REQUEST, make_user, snapshot, start_parked
from zart_django import DurableScheduler, EventTimeout, durable, step
from zart_django.approvals import (
    ApprovalAlreadyDecided,
    ApprovalClosed,
    ApprovalDecision,
    ApprovalNotFound,
    ApprovalPermissionDenied,
    decidable_by,
    decide,
    wait_for_approval,
)
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.models import Event, Execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db


@dataclass
class Spend:
    amount: int
    who: str


@step("pay")
def pay(spend: Spend) -> str:
    return f"paid {spend.amount} to {spend.who}"


@durable("approvals-finance")
def finance_task(spend: Spend) -> str:
    """Needs a special permission, has the default title and summary, and a short deadline."""
    try:
        decision = wait_for_approval("cfo", timeout="1h", permission="zart_django.change_execution")
    except EventTimeout:
        return "expired"
    return pay(spend) if decision.approved else f"refused by {decision.reviewer}"


class TestRequest:
    def test_waiting_records_one_request_with_the_tasks_title_and_summary(self):
        start_parked("q-1")
        for _ in range(3):  # replays find the request instead of adding one
            Execution.objects.filter(pk="q-1").update(
                scheduled_at=Execution.objects.get(pk="q-1").created_at
            )
            run_until_idle()
        request = ApprovalRequest.objects.get(execution_id="q-1")
        assert request.event == "manager-approval"
        assert request.title == "Bob requests staging-environment"
        assert request.summary == "Need to test the new deployment pipeline"
        assert request.permission == "zart_approvals.decide_approval"
        assert request.outcome == "pending"

    def test_default_title_and_summary_come_from_the_task_and_its_input(self):
        DurableScheduler().start_for(finance_task, "q-2", Spend(120, "Dan"))
        run_until_idle()
        request = ApprovalRequest.objects.get(execution_id="q-2")
        assert request.title == "approvals-finance q-2"
        assert request.summary == "amount: 120\nwho: Dan"
        assert request.permission == "zart_django.change_execution"

    def test_a_timed_out_wait_expires_the_request(self):
        cfo = make_user("cfo", "zart_django.change_execution")
        DurableScheduler().start_for(finance_task, "q-3", Spend(1, "x"))
        run_until_idle()
        advance_time("2h")
        run_until_idle()
        assert DurableScheduler().wait_completion("q-3", timeout=1) == "expired"
        assert ApprovalRequest.objects.get(execution_id="q-3").outcome == "expired"
        before = snapshot("q-3")
        with pytest.raises(ApprovalClosed, match="expired"):
            decide("q-3", cfo, approved=True)
        assert snapshot("q-3") == before

    def test_outside_a_durable_function_it_says_where_it_belongs(self):
        with pytest.raises(RuntimeError, match="inside a durable function"):
            wait_for_approval()


class TestDecide:
    def test_approval_resumes_the_execution_with_the_reviewer_from_the_user(self, manager):
        start_parked("d-1")
        record = decide("d-1", manager, approved=True, comment="go ahead", source="inbox")
        assert (record.reviewer, record.reviewer_name, record.source) == (
            "alice",
            "Alice Manager",
            "inbox",
        )
        assert ApprovalRequest.objects.get(execution_id="d-1").outcome == "approved"
        run_until_idle()
        output = DurableScheduler().wait_completion("d-1", timeout=1)
        assert output == ApprovalOutput(
            "approved", "Bob", "staging-environment", "Alice Manager", "go ahead"
        )

    def test_the_decision_payload_carries_when_it_was_decided(self, manager):
        start_parked("d-2")
        record = decide("d-2", manager, approved=False, comment="no")
        payload = Event.objects.get(execution_id="d-2").payload
        assert payload == {
            "approved": False,
            "reviewer": "Alice Manager",
            "comment": "no",
            "decided_at": record.decided_at.isoformat(),
            "votes": [
                {
                    "reviewer": "alice",
                    "approved": False,
                    "comment": "no",
                    "decided_at": record.decided_at.isoformat(),
                    "data": None,
                    "delegated_by": "",
                }
            ],
            "data": None,
        }
        run_until_idle()
        assert DurableScheduler().wait_completion("d-2", timeout=1).decision == "rejected"

    def test_without_the_permission_it_is_refused_and_nothing_changes(self, clerk):
        start_parked("d-3")
        before = snapshot("d-3")
        with pytest.raises(ApprovalPermissionDenied, match="zart_approvals.decide_approval"):
            decide("d-3", clerk, approved=True)
        assert snapshot("d-3") == before

    def test_the_per_task_permission_is_required_not_the_general_one(self, manager):
        DurableScheduler().start_for(finance_task, "d-4", Spend(5, "Eve"))
        run_until_idle()
        before = snapshot("d-4")
        with pytest.raises(ApprovalPermissionDenied, match="change_execution"):
            decide("d-4", manager, approved=True)
        assert snapshot("d-4") == before
        cfo = make_user("cfo", "zart_django.change_execution")
        decide("d-4", cfo, approved=True)
        run_until_idle()
        assert DurableScheduler().wait_completion("d-4", timeout=1) == "paid 5 to Eve"

    def test_deciding_twice_is_refused_with_who_decided_first(self, manager):
        start_parked("d-5")
        decide("d-5", manager, approved=True)
        other = make_user("bert", "zart_approvals.decide_approval")
        before = snapshot("d-5")
        with pytest.raises(ApprovalAlreadyDecided, match="already approved by alice"):
            decide("d-5", other, approved=False)
        assert snapshot("d-5") == before

    def test_an_execution_without_a_request_is_not_found(self, manager):
        with pytest.raises(ApprovalNotFound):
            decide("nope", manager, approved=True)

    def test_a_cancelled_execution_can_no_longer_be_decided(self, manager):
        start_parked("d-6")
        DurableScheduler().cancel("d-6")
        with pytest.raises(ApprovalClosed, match="cancelled"):
            decide("d-6", manager, approved=True)
        assert not ApprovalRecord.objects.exists()

    def test_inactive_and_anonymous_users_cannot_decide(self, manager):
        from django.contrib.auth.models import AnonymousUser

        start_parked("d-7")
        manager.is_active = False
        with pytest.raises(ApprovalPermissionDenied):
            decide("d-7", manager, approved=True)
        with pytest.raises(ApprovalPermissionDenied):
            decide("d-7", AnonymousUser(), approved=True)

    def test_the_audit_record_cannot_be_changed_or_deleted(self, manager):
        start_parked("d-8")
        record = decide("d-8", manager, approved=True)
        record.comment = "rewritten"
        with pytest.raises(ValueError, match="immutable"):
            record.save()
        with pytest.raises(ValueError, match="immutable"):
            record.delete()

    def test_an_event_offered_with_the_approvals_name_is_an_ordinary_event(self, manager):
        """Only ``decide`` reaches the wait: a plain event of the same name never decides it."""
        DurableScheduler().start_for(approval_task, "d-9", REQUEST)
        DurableScheduler().offer_event(
            "d-9", "manager-approval", ApprovalDecision(True, "script", "")
        )
        run_until_idle()
        assert DurableScheduler().get("d-9").status == "waiting"
        decide("d-9", manager, approved=False, comment="no")
        run_until_idle()
        output = DurableScheduler().wait_completion("d-9", timeout=1)
        assert (output.decision, output.reviewer) == ("rejected", "Alice Manager")


class TestInbox:
    def test_each_user_sees_the_open_requests_they_may_decide_newest_first(self, manager, clerk):
        start_parked("i-1")
        start_parked("i-2")
        DurableScheduler().start_for(finance_task, "i-3", Spend(5, "Eve"))
        run_until_idle()
        start_parked("i-4")
        decide("i-4", manager, approved=True)
        assert [r.execution_id for r in decidable_by(manager)] == ["i-2", "i-1"]
        assert list(decidable_by(clerk)) == []

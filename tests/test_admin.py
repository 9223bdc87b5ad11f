"""The admin: execution list and page, Approve/Reject on the page, bulk actions, read-only history."""

from __future__ import annotations

from dataclasses import replace

import pytest
from django.test import Client

from demo_project.approval.users import MANAGER_PASSWORD, ensure_manager
from tests.approval_helpers import PASSWORD, make_user, start_parked, superuser_client
from tests.test_runs import starts as starts_of
from tests.workflows import Job
from zart_django import DurableScheduler
from zart_django.approvals import decide
from zart_django.approvals.models import ApprovalRecord
from zart_django.models import Event, Execution
from zart_django.testing import run_until_idle

pytestmark = pytest.mark.django_db

PAGE = "/admin/zart_django/execution/{}/change/"
DECIDE = "/admin/zart_django/execution/{}/decide/"


@pytest.fixture
def manager_client() -> Client:
    ensure_manager()
    client = Client()
    assert client.login(username="alice", password=MANAGER_PASSWORD)
    return client


def test_list_shows_status_task_waiting_and_age_and_filters_approvals(manager_client):
    start_parked("ad-1")
    DurableScheduler().start("ad-2", "no-input")
    run_until_idle()
    page = manager_client.get("/admin/zart_django/execution/").content.decode()
    assert "ad-1" in page and "ad-2" in page
    assert "<strong>approval</strong> (manager-approval)" in page
    assert "Waiting for approval" in page
    waiting = manager_client.get("/admin/zart_django/execution/?approval=waiting")
    assert "ad-1" in waiting.content.decode()
    assert "ad-2" not in waiting.content.decode()
    found = manager_client.get("/admin/zart_django/execution/?q=staging-environment")
    assert "ad-1" in found.content.decode() and "ad-2" not in found.content.decode()


def test_page_shows_input_timeline_and_decides_with_a_comment(manager_client):
    start_parked("ad-3")
    page = manager_client.get(PAGE.format("ad-3")).content.decode()
    assert "Approval: Bob requests staging-environment" in page
    assert 'value="approve"' in page
    assert "zart-timeline" in page and "validate-request" in page
    assert "&quot;requester_name&quot;: &quot;Bob&quot;" in page
    response = manager_client.post(
        DECIDE.format("ad-3"), {"decision": "reject", "comment": "too risky"}, follow=True
    )
    assert "Rejected ad-3" in response.content.decode()
    record = ApprovalRecord.objects.get()
    assert (record.reviewer, record.source, record.approved) == ("alice", "admin", False)
    run_until_idle()
    output = DurableScheduler().wait_completion("ad-3", timeout=1)
    assert (output.decision, output.reviewer, output.comment) == (
        "rejected",
        "Alice (Manager)",
        "too risky",
    )
    after = manager_client.get(PAGE.format("ad-3")).content.decode()
    assert 'value="approve"' not in after
    assert "too risky" in after


def test_bulk_actions_decide_each_and_report_the_refused(manager_client):
    start_parked("bk-1")
    start_parked("bk-2")
    DurableScheduler().start("bk-3", "no-input")
    response = manager_client.post(
        "/admin/zart_django/execution/",
        {"action": "approve_selected", "_selected_action": ["bk-1", "bk-2", "bk-3"]},
        follow=True,
    )
    text = response.content.decode()
    assert "Approved 2" in text
    assert "Not decided: execution &#x27;bk-3&#x27; has no approval request" in text
    assert sorted(ApprovalRecord.objects.values_list("execution_id", flat=True)) == [
        "bk-1",
        "bk-2",
    ]


def test_staff_without_the_permission_sees_no_buttons_and_a_forged_post_is_403():
    start_parked("ad-4")
    make_user("staff", "zart_django.view_execution", staff=True)
    client = Client()
    client.login(username="staff", password=PASSWORD)
    page = client.get(PAGE.format("ad-4")).content.decode()
    assert "Approval: Bob requests staging-environment" in page
    assert 'value="approve"' not in page
    assert "approve_selected" not in client.get("/admin/zart_django/execution/").content.decode()
    assert client.post(DECIDE.format("ad-4"), {"decision": "approve"}).status_code == 403
    assert not ApprovalRecord.objects.exists()
    assert not Event.objects.exists()


def test_admin_decide_needs_csrf_and_post():
    ensure_manager()
    start_parked("ad-5")
    client = Client(enforce_csrf_checks=True)
    client.login(username="alice", password=MANAGER_PASSWORD)
    assert client.post(DECIDE.format("ad-5"), {"decision": "approve"}).status_code == 403
    assert client.get(DECIDE.format("ad-5")).status_code == 405
    assert not ApprovalRecord.objects.exists()


def test_history_is_read_only(manager_client):
    start_parked("ad-6")
    client = superuser_client()
    manager_client.post(DECIDE.format("ad-6"), {"decision": "approve"})
    record = ApprovalRecord.objects.get()
    page = client.get(f"/admin/zart_approvals/approvalrecord/{record.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.get("/admin/zart_approvals/approvalrecord/add/").status_code == 403
    assert (
        client.post(f"/admin/zart_approvals/approvalrecord/{record.pk}/delete/").status_code == 403
    )
    execution_page = client.get(PAGE.format("ad-6")).content.decode()
    assert 'name="_save"' not in execution_page


def test_searching_decisions_and_requests_finds_by_execution_id_reviewer_and_comment():
    """Issue 9: searching the Decisions list answered 500 (a text lookup on a foreign key)."""
    manager = make_user("carol", "zart_approvals.decide_approval", staff=True)
    start_parked("srch-1")
    start_parked("srch-2")
    decide("srch-1", manager, approved=True, comment="budget ok")
    decide("srch-2", manager, approved=False, comment="no")
    client = Client()
    admin_user = make_user("boss", staff=True)
    admin_user.is_superuser = True
    admin_user.save()
    assert client.login(username="boss", password=PASSWORD)
    for term, found, missing in [("srch-1", "srch-1", "srch-2"), ("budget", "srch-1", "srch-2")]:
        page = client.get("/admin/zart_approvals/approvalrecord/", {"q": term})
        assert page.status_code == 200, term
        assert found in page.content.decode() and missing not in page.content.decode()
    page = client.get("/admin/zart_approvals/approvalrequest/", {"q": "srch-2"})
    assert page.status_code == 200
    assert "srch-2" in page.content.decode() and "srch-1" not in page.content.decode()


RUN = "/admin/zart_django/execution/{}/run/"


@pytest.fixture
def operator() -> Client:
    """Staff who may view and change executions (retry, rerun, restart)."""
    make_user("ops", "zart_django.view_execution", "zart_django.change_execution", staff=True)
    client = Client()
    assert client.login(username="ops", password=PASSWORD)
    return client


def start_failed(execution_id: str, job: Job) -> None:
    DurableScheduler().start(execution_id, "breaks", replace(job, fail_times=1))
    run_until_idle()


def test_page_retries_and_the_timeline_shows_every_run(operator, job):
    start_failed("rn-1", job)
    page = operator.get(PAGE.format("rn-1")).content.decode()
    assert 'value="retry"' in page and 'value="restart"' in page
    assert '<option value="fragile">fragile</option>' in page
    response = operator.post(RUN.format("rn-1"), {"run": "retry"}, follow=True)
    assert "Run 2 of rn-1 (retry) is pending now." in response.content.decode()
    run_until_idle()
    page = operator.get(PAGE.format("rn-1")).content.decode()
    assert "Run 2 (current): retry" in page and ", completed</h3>" in page
    assert "Run 1: started" in page and "ValueError: fragile failed on attempt 1</h3>" in page
    assert 'value="retry"' not in page  # completed: nothing to retry
    assert starts_of(job) == {"first": 1, "fragile": 2, "second": 1}


def test_page_reruns_from_the_chosen_step_and_restarts(operator, job):
    start_failed("rn-2", job)
    operator.post(RUN.format("rn-2"), {"run": "retry"})
    run_until_idle()
    operator.post(RUN.format("rn-2"), {"run": "rerun", "from_step": "second"})
    run_until_idle()
    operator.post(RUN.format("rn-2"), {"run": "restart"})
    run_until_idle()
    info = DurableScheduler().get("rn-2")
    assert [(r.began, r.from_step, r.status) for r in info.runs] == [
        ("start", "", "failed"),
        ("retry", "", "completed"),
        ("rerun", "second", "completed"),
        ("restart", "", "completed"),
    ]
    assert starts_of(job) == {"first": 2, "fragile": 3, "second": 3}
    refused = operator.post(RUN.format("rn-2"), {"run": "rerun", "from_step": "nope"}, follow=True)
    assert "Not done: execution &#x27;rn-2&#x27; has no recorded step" in refused.content.decode()


def test_bulk_retry_retries_the_failed_and_reports_the_refused(operator, job):
    start_failed("rb-1", replace(job, name="one"))
    start_failed("rb-2", replace(job, name="two"))
    DurableScheduler().start("rb-3", "no-input")
    run_until_idle()
    response = operator.post(
        "/admin/zart_django/execution/",
        {"action": "retry_selected", "_selected_action": ["rb-1", "rb-2", "rb-3"]},
        follow=True,
    )
    text = response.content.decode()
    assert "Retrying 2" in text
    assert "Not done: execution &#x27;rb-3&#x27; cannot be retried: it is completed" in text
    assert [e.run for e in Execution.objects.order_by("id")] == [2, 2, 1]


def test_without_change_execution_no_buttons_and_a_forged_post_is_403(job):
    start_failed("rn-3", job)
    make_user("viewer", "zart_django.view_execution", staff=True)
    client = Client()
    client.login(username="viewer", password=PASSWORD)
    page = client.get(PAGE.format("rn-3")).content.decode()
    assert 'value="retry"' not in page
    assert "retry_selected" not in client.get("/admin/zart_django/execution/").content.decode()
    assert client.post(RUN.format("rn-3"), {"run": "retry"}).status_code == 403
    assert client.get(RUN.format("rn-3")).status_code == 405
    assert Execution.objects.get(pk="rn-3").run == 1

"""The admin: execution list and page, Approve/Reject on the page, bulk actions, read-only history."""

from __future__ import annotations

import pytest
from django.test import Client

from demo_project.approval.users import MANAGER_PASSWORD, ensure_manager
from tests.approval_helpers import PASSWORD, make_user, start_parked, superuser_client
from zart_django import DurableScheduler
from zart_django.approvals import decide
from zart_django.models import ApprovalRecord, Event
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
    page = client.get(f"/admin/zart_django/approvalrecord/{record.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert client.get("/admin/zart_django/approvalrecord/add/").status_code == 403
    assert client.post(f"/admin/zart_django/approvalrecord/{record.pk}/delete/").status_code == 403
    execution_page = client.get(PAGE.format("ad-6")).content.decode()
    assert 'name="_save"' not in execution_page


def test_searching_decisions_and_requests_finds_by_execution_id_reviewer_and_comment():
    """Issue 9: searching the Decisions list answered 500 (a text lookup on a foreign key)."""
    manager = make_user("carol", "zart_django.decide_approval", staff=True)
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
        page = client.get("/admin/zart_django/approvalrecord/", {"q": term})
        assert page.status_code == 200, term
        assert found in page.content.decode() and missing not in page.content.decode()
    page = client.get("/admin/zart_django/approvalrequest/", {"q": "srch-2"})
    assert page.status_code == 200
    assert "srch-2" in page.content.decode() and "srch-1" not in page.content.decode()

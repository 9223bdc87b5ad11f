"""The manager's inbox (template views): who sees what, deciding, CSRF, and forged posts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db.models import F
from django.test import Client

from tests.approval_helpers import PASSWORD, make_user, start_parked
from tests.conftest import wait_until
from zart_django import DurableScheduler
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.models import Event, WorkerSeen
from zart_django.testing import run_until_idle

pytestmark = pytest.mark.django_db


def logged_in(user, **kwargs) -> Client:
    client = Client(**kwargs)
    assert client.login(username=user.username, password=PASSWORD)
    return client


def test_the_inbox_needs_a_login():
    response = Client().get("/approvals/")
    assert response.status_code == 302
    assert response["Location"].startswith("/approvals/login/?next=/approvals/")


def test_login_page_logs_in_and_goes_to_the_inbox(manager):
    client = Client()
    assert client.get("/approvals/login/").status_code == 200
    response = client.post(
        "/approvals/login/", {"username": "alice", "password": PASSWORD, "next": "/approvals/"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/approvals/"


def test_inbox_lists_open_requests_soonest_deadline_first_with_summary_and_age(manager):
    start_parked("in-1")
    start_parked("in-2")
    page = logged_in(manager).get("/approvals/").content.decode()
    assert page.index("in-1") < page.index("in-2")  # in-1 asked first: its 120 s end first
    assert "Bob requests staging-environment" in page
    assert "Need to test the new deployment pipeline" in page
    assert "minute" in page  # the age, "0 minutes"


def test_approve_from_the_detail_page_resumes_the_execution(manager):
    start_parked("in-3")
    client = logged_in(manager)
    page = client.get("/approvals/requests/in-3/").content.decode()
    assert 'value="approve"' in page and 'value="reject"' in page
    response = client.post(
        "/approvals/requests/in-3/decide/",
        {"decision": "approve", "comment": "fine", "reviewer": "Mallory"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/approvals/"
    assert "Approved in-3" in response.content.decode()
    record = ApprovalRecord.objects.get()
    assert (record.reviewer, record.source, record.comment) == ("alice", "inbox", "fine")
    run_until_idle()
    output = DurableScheduler().wait_completion("in-3", timeout=1)
    assert (output.decision, output.reviewer, output.comment) == (
        "approved",
        "Alice Manager",
        "fine",
    )
    decided = client.get("/approvals/requests/in-3/").content.decode()
    assert 'value="approve"' not in decided
    assert "Approved</strong> by Alice Manager" in decided
    history = client.get("/approvals/history/").content.decode()
    assert "in-3" in history and "fine" in history


def test_deciding_twice_shows_who_decided_first_and_changes_nothing(manager):
    start_parked("in-4")
    client = logged_in(manager)
    client.post("/approvals/requests/in-4/decide/", {"decision": "reject", "comment": "no"})
    response = client.post("/approvals/requests/in-4/decide/", {"decision": "approve"}, follow=True)
    assert "already rejected by alice" in response.content.decode()
    assert ApprovalRecord.objects.get().approved is False


def test_without_permission_no_buttons_and_a_forged_post_is_403(manager, clerk):
    start_parked("in-5")
    client = logged_in(clerk)
    assert "in-5" not in client.get("/approvals/").content.decode()
    assert client.get("/approvals/requests/in-5/").status_code == 403
    response = client.post("/approvals/requests/in-5/decide/", {"decision": "approve"})
    assert response.status_code == 403
    assert not ApprovalRecord.objects.exists()
    assert not Event.objects.exists()
    assert ApprovalRequest.objects.get().status == "pending"


def test_a_viewer_sees_the_request_but_no_buttons():
    start_parked("in-6")
    viewer = make_user("viewer", "zart_django.view_execution")
    page = logged_in(viewer).get("/approvals/requests/in-6/").content.decode()
    assert "Bob requests staging-environment" in page
    assert 'value="approve"' not in page
    assert "may look at this request but not decide it" in page


def test_a_forged_post_on_another_execution_id_is_404_and_changes_nothing(manager):
    start_parked("in-7")
    client = logged_in(manager)
    DurableScheduler().start("plain", "no-input")
    for forged in ("plain", "does-not-exist"):
        response = client.post(f"/approvals/requests/{forged}/decide/", {"decision": "approve"})
        assert response.status_code == 404
    assert not ApprovalRecord.objects.exists()
    assert not Event.objects.exists()


def test_the_per_task_permission_applies_to_forged_posts(manager):
    start_parked("in-8")
    ApprovalRequest.objects.filter(execution_id="in-8").update(
        permission="zart_django.change_execution"
    )
    client = logged_in(manager)
    assert "in-8" not in client.get("/approvals/").content.decode()
    response = client.post("/approvals/requests/in-8/decide/", {"decision": "approve"})
    assert response.status_code == 403
    assert not ApprovalRecord.objects.exists()


def test_csrf_is_enforced(manager):
    start_parked("in-9")
    client = logged_in(manager, enforce_csrf_checks=True)
    response = client.post("/approvals/requests/in-9/decide/", {"decision": "approve"})
    assert response.status_code == 403
    assert not ApprovalRecord.objects.exists()
    page = client.get("/approvals/requests/in-9/")
    token = page.cookies["csrftoken"].value
    ok = client.post(
        "/approvals/requests/in-9/decide/",
        {"decision": "approve", "csrfmiddlewaretoken": token},
    )
    assert ok.status_code == 302
    assert ApprovalRecord.objects.get().approved is True


def test_an_invalid_decision_is_400_with_the_form(manager):
    start_parked("in-10")
    response = logged_in(manager).post("/approvals/requests/in-10/decide/", {"decision": "maybe"})
    assert response.status_code == 400
    assert not ApprovalRecord.objects.exists()


def test_a_cancelled_request_shows_its_outcome_instead_of_the_form(manager):
    start_parked("in-11")
    DurableScheduler().cancel("in-11")
    client = logged_in(manager)
    page = client.get("/approvals/requests/in-11/").content.decode()
    assert 'value="approve"' not in page
    assert "closed (execution cancelled)" in page
    assert "in-11" not in client.get("/approvals/").content.decode()
    assert "in-11" in client.get("/approvals/history/").content.decode()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_after_a_decision_the_inbox_says_whether_a_worker_runs(manager, start_worker):
    """Issue 9: the inbox said "the execution resumes now" with no worker running."""
    client = logged_in(manager)

    def decide_and_read(execution_id: str) -> str:
        response = client.post(
            f"/approvals/requests/{execution_id}/decide/", {"decision": "approve"}, follow=True
        )
        return response.content.decode()

    start_parked("seen-1")
    assert "No worker has been seen yet: it resumes when one runs." in decide_and_read("seen-1")
    assert DurableScheduler().get("seen-1").status == "waiting"

    worker = start_worker()
    start_parked("seen-2")
    scheduler = DurableScheduler()
    wait_until(lambda: scheduler.worker_seen_ago() is not None, timeout=30, what="the worker")
    assert "A worker will resume it shortly." in decide_and_read("seen-2")
    assert scheduler.wait_completion("seen-2", timeout=30).decision == "approved"
    assert scheduler.wait_completion("seen-1", timeout=30).decision == "approved"
    worker.stop()

    start_parked("seen-3")
    WorkerSeen.objects.update(seen_at=F("seen_at") - timedelta(minutes=10))  # as if long ago
    page = decide_and_read("seen-3")
    assert "No worker has been seen for 10\xa0minutes: it resumes when one runs." in page

"""End to end in a real browser: Chromium (Debian's, driven by Playwright) against the demo served by
``runserver`` and a real worker, on the test database.

A manager logs in, approves one request and rejects another from the inbox, and both executions
complete with the decision; a user without the permission sees no buttons and a forged POST is 403.
An expense claim takes two approvals of three with an amount each: its requester may not approve it
(no button, the reason, a forged POST is 403), one approver reassigns it from the request page, and
two others approve it with the amount; the execution completes with both votes and the amount.
On a phone (390 × 844) the inbox, a request and the history fit the screen's width. Screenshots
go to ``test-output/browser/``; with ZART_README_SCREENSHOTS=1 those of the inbox (desktop and
phone) replace the README's in ``docs/screenshots/`` (a plain run leaves the checkout unchanged).
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.db import connections

from demo_project.approval.users import MANAGER_PASSWORD, ensure_manager
from demo_project.approval.workflows import ApprovalRequest, Expense, access_request, expense
from tests import services
from tests.approval_helpers import PASSWORD, make_user
from tests.conftest import ROOT, subprocess_env, wait_until
from tests.passes import sqlite_pass_only
from zart_django import DurableScheduler
from zart_django.approvals.models import ApprovalRecord
from zart_django.approvals.models import ApprovalRequest as RequestRow

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = ROOT / "test-output" / "browser"
SCREENSHOTS = ROOT / "docs" / "screenshots" if os.environ.get("ZART_README_SCREENSHOTS") else OUTPUT
"""The inbox's screenshots (desktop, phone) and the expense's request page go to the README's."""
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.needs("chromium"),
    sqlite_pass_only(
        "what the browser does is the same on either database (the pages' queries are tested"
        " on both by Django's test client)"
    ),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The demo under ``runserver`` on a free port, on this test's database; its base URL."""
    port = services.free_port()
    env = {**subprocess_env(), "DJANGO_DEBUG": "1"}
    log = open(tmp_path / "server.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(f"{base}/approvals/login/"), 30, "the demo server")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Chromium, driven by Playwright's sync API. That API keeps an event loop in this thread, so
    Django's guard against ORM calls from async code must be told this test's calls are sync,
    and the connections opened meanwhile are closed here (pytest-django does not see them)."""
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=services.chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
            connections.close_all()  # the ones opened while Playwright's loop ran


def log_in(browser, base: str, username: str, password: str, viewport: dict = DESKTOP):
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(15_000)
    page.goto(f"{base}/approvals/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/approvals/")
    return page


def start_requests(scheduler: DurableScheduler) -> dict[str, str]:
    requests = {
        "web-approve": ApprovalRequest("Carol", "production-db (read only)", "Billing report"),
        "web-reject": ApprovalRequest("Dan", "root on the build farm", "Faster builds"),
        "web-untouched": ApprovalRequest("Erin", "a second monitor", "Design reviews"),
    }
    for execution_id, request in requests.items():
        scheduler.start_for(access_request, execution_id, request)
    return {key: r.requester_name for key, r in requests.items()}


def assert_fits_the_width(page, url: str) -> None:
    """The page at ``url`` scrolls only vertically: nothing runs off the right edge."""
    page.goto(url)
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{url} is {overflow} px wider than the screen"


def decide_in_inbox(page, base: str, execution_id: str, button: str, comment: str) -> None:
    page.goto(f"{base}/approvals/")
    page.click(f"a[href='/approvals/requests/{execution_id}/']")
    page.fill("#id_comment", comment)
    page.click(f"button[value={button}]")
    page.wait_for_url(f"{base}/approvals/")
    verdict = "Approved" if button == "approve" else "Rejected"
    assert f"{verdict} {execution_id}" in page.inner_text(".messages")


def test_a_manager_approves_and_rejects_in_the_inbox(
    server: str, browser, start_worker: Callable[..., object]
) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    ensure_manager()
    make_user("clerk")
    scheduler = DurableScheduler()
    worker = start_worker()
    names = start_requests(scheduler)
    wait_until(
        lambda: RequestRow.objects.open().filter(execution__status="waiting").count() == 3,
        30,
        "three executions waiting for approval",
    )

    page = log_in(browser, server, "alice", MANAGER_PASSWORD)
    inbox = page.inner_text("table.inbox")
    for execution_id, requester in names.items():
        assert execution_id in inbox and requester in inbox
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "inbox.png"), full_page=True)

    phone = log_in(browser, server, "alice", MANAGER_PASSWORD, viewport=PHONE)
    assert_fits_the_width(phone, f"{server}/approvals/")
    assert phone.is_visible("table.inbox td[data-label]")
    phone.screenshot(path=str(SCREENSHOTS / "inbox-phone.png"), full_page=True)
    assert_fits_the_width(phone, f"{server}/approvals/requests/web-untouched/")
    assert phone.is_visible("button[value=approve]")

    decide_in_inbox(page, server, "web-approve", "approve", "Fine for the billing report")
    page.goto(f"{server}/admin/zart_django/execution/web-reject/change/")
    assert page.is_visible(".zart-approval button.approve")
    assert "manager-approval" in page.inner_text("table.zart-timeline")
    page.screenshot(path=str(OUTPUT / "admin-execution.png"), full_page=True)
    decide_in_inbox(page, server, "web-reject", "reject", "Use the shared cache instead")

    for execution_id in ("web-approve", "web-reject"):
        wait_until(lambda e=execution_id: scheduler.get(e).is_finished, 30, f"{execution_id}")
    approved = scheduler.wait_completion("web-approve", timeout=1)
    rejected = scheduler.wait_completion("web-reject", timeout=1)
    assert (approved.decision, approved.reviewer, approved.comment) == (
        "approved",
        "Alice (Manager)",
        "Fine for the billing report",
    )
    assert (rejected.decision, rejected.comment) == ("rejected", "Use the shared cache instead")
    assert [s.name for s in scheduler.get("web-approve").steps] == [
        "approval-opened",
        "approval:manager-approval",
        "grant-access",
    ]
    page.goto(f"{server}/approvals/requests/web-approve/")
    assert "Approved by Alice (Manager)" in page.inner_text(".decision")
    assert not page.is_visible("button[value=approve]")
    page.goto(f"{server}/approvals/history/")
    page.screenshot(path=str(OUTPUT / "history.png"), full_page=True)
    assert_fits_the_width(phone, f"{server}/approvals/history/")
    assert "web-approve" in phone.inner_text("table.history")
    assert_fits_the_width(phone, f"{server}/approvals/requests/web-approve/")

    clerk = log_in(browser, server, "clerk", PASSWORD)
    assert "Nothing is waiting for your decision" in clerk.inner_text("main")
    denied = clerk.goto(f"{server}/approvals/requests/web-untouched/")
    assert denied.status == 403
    assert not clerk.is_visible("button[value=approve]")
    token = next(c["value"] for c in clerk.context.cookies() if c["name"] == "csrftoken")
    forged = clerk.context.request.post(
        f"{server}/approvals/requests/web-untouched/decide/",
        form={"decision": "approve", "comment": "forged", "csrfmiddlewaretoken": token},
    )
    assert forged.status == 403
    assert ApprovalRecord.objects.count() == 2
    assert scheduler.get("web-untouched").status == "waiting"
    assert worker.terminate() == 0


def post_decision(page, base: str, execution_id: str, fields: dict[str, str]):
    """POST an approval with ``fields`` for ``execution_id`` with ``page``'s session and CSRF
    token, as a page would but bypassing its checks; the response."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return page.context.request.post(
        f"{base}/approvals/requests/{execution_id}/decide/",
        form={"decision": "approve", "csrfmiddlewaretoken": token, **fields},
    )


def listed(page, base: str, query: str) -> str:
    """The inbox's rows under the filter ``query``, as text ("" when none)."""
    page.goto(f"{base}/approvals/?{query}")
    return page.inner_text("table.inbox") if page.is_visible("table.inbox") else ""


def test_two_of_three_approve_an_expense_with_an_amount_after_a_reassignment(
    server: str, browser, start_worker: Callable[..., object]
) -> None:
    ensure_manager()  # alice, the employee's manager: an assignee by name
    finance = Group.objects.create(name="finance")
    for username, full_name in (("bob", "Bob Finance"), ("dave", "Dave Doe")):
        make_user(username, full_name=full_name).groups.add(finance)
    make_user("erin", full_name="Erin Deputy")
    scheduler = DurableScheduler()
    worker = start_worker()
    claim = Expense("Dave Doe", "149.90", "Train to the fair", manager="alice")
    scheduler.start_for(expense, "exp-web", claim, started_by="dave")
    wait_until(
        lambda: RequestRow.objects.open().filter(execution__status="waiting").exists(),
        30,
        "the expense waiting for its approvers",
    )
    request_page = f"{server}/approvals/requests/exp-web/"

    dave = log_in(browser, server, "dave", PASSWORD)
    assert "exp-web" not in listed(dave, server, "")
    dave.goto(request_page)
    assert "Dave Doe (dave)" in dave.inner_text("dd.requester")
    assert not dave.is_visible("button[value=approve]")
    assert "so someone else has to decide it" in dave.inner_text(".refusal")
    assert not dave.is_visible("form.reassign")
    forged = post_decision(dave, server, "exp-web", {"data-approved_amount": "149.90"})
    assert forged.status == 403

    bob = log_in(browser, server, "bob", PASSWORD)
    assert "exp-web" in listed(bob, server, "assigned=groups")
    assert "exp-web" not in listed(bob, server, "assigned=me")
    bob.goto(request_page)
    assert "0 of 2 approvals" in bob.inner_text(".progress")
    bob.fill("#id_to", "erin")
    bob.fill("#id_reason", "On holiday until Monday")
    bob.click("form.reassign button[type=submit]")
    bob.wait_for_url(f"{server}/approvals/")
    assert "Reassigned exp-web to erin." in bob.inner_text(".messages")
    assert "exp-web" not in listed(bob, server, "")

    alice = log_in(browser, server, "alice", MANAGER_PASSWORD)
    assert "exp-web" in listed(alice, server, "assigned=me")
    alice.goto(request_page)
    alice.fill("#id_comment", "The fair was worth it")
    alice.fill("#id_data-approved_amount", "120")
    alice.click("button[value=approve]")
    alice.wait_for_url(f"{server}/approvals/")
    assert "Approved exp-web." in alice.inner_text(".messages")
    assert scheduler.get("exp-web").status == "waiting"  # one vote of two

    erin = log_in(browser, server, "erin", PASSWORD)
    assert "exp-web" in listed(erin, server, "assigned=me")
    erin.goto(request_page)
    assert "1 of 2 approvals" in erin.inner_text(".progress")
    assert "Alice (Manager)" in erin.inner_text(".votes")
    erin.fill("#id_data-approved_amount", "-5")
    erin.click("button[value=approve]")  # the browser refuses it: the field says min="0"
    assert not erin.evaluate("document.querySelector('#id_data-approved_amount').validity.valid")
    refused = post_decision(erin, server, "exp-web", {"data-approved_amount": "-5"})
    assert refused.status == 400 and "greater than or equal to 0" in refused.text()
    assert ApprovalRecord.objects.filter(execution_id="exp-web").count() == 1
    erin.fill("#id_data-approved_amount", "100")
    erin.set_viewport_size({"width": 1200, "height": 900})
    erin.screenshot(path=str(SCREENSHOTS / "request.png"), full_page=True)
    erin.click("button[value=approve]")
    erin.wait_for_url(f"{server}/approvals/")
    assert "Approved exp-web." in erin.inner_text(".messages")

    wait_until(lambda: scheduler.get("exp-web").is_finished, 30, "the expense to complete")
    paid = scheduler.wait_completion("exp-web", timeout=1)
    assert (paid.decision, paid.approved_amount, paid.approvers) == (
        "approved",
        "100",
        ["alice", "erin"],
    )
    (wait,) = [s for s in scheduler.get("exp-web").steps if s.name == "approval:expense-approval"]
    decision = wait.result
    assert decision["data"] == {"approved_amount": "100"}
    assert [(v["reviewer"], v["data"], v["delegated_by"]) for v in decision["votes"]] == [
        ("alice", {"approved_amount": "120"}, ""),
        ("erin", {"approved_amount": "100"}, "bob"),
    ]
    assert decision["reviewer"] == "Erin Deputy"
    assert [s.name for s in scheduler.get("exp-web").steps][-1] == "pay-expense"
    dave.goto(request_page)
    assert "Approved" in dave.inner_text(".decision")
    assert ApprovalRecord.objects.filter(execution_id="exp-web").count() == 2
    assert worker.terminate() == 0

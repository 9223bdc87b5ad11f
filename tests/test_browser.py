"""End to end in a real browser: Chromium (Debian's, driven by Playwright) against the demo served by
``runserver`` and a real worker, on the test database.

A manager logs in, approves one request and rejects another from the inbox, and both executions
complete with the decision; a user without the permission sees no buttons and a forged POST is 403.
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
from django.db import connection, connections

from demo_project.approval.users import MANAGER_PASSWORD, ensure_manager
from demo_project.approval.workflows import ApprovalRequest, access_request
from tests import services
from tests.approval_helpers import PASSWORD, make_user
from tests.conftest import ROOT, wait_until
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
DESKTOP = {"width": 1200, "height": 800}
PHONE = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(120),
    pytest.mark.needs("chromium"),
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """The demo under ``runserver`` on a free port, on this test's database; its base URL."""
    port = services.free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ZART_DB_NAME": str(connection.settings_dict["NAME"]),
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
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

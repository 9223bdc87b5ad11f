"""The README's demos, end to end, each with its own background worker: approvals, children."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError

from demo_project.approval import worker as demo_worker
from demo_project.approval.worker import running_worker
from tests.conftest import ROOT, subprocess_env, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]


def run_command(name: str) -> str:
    """Run ``manage.py <name>`` on the test database; return its output, failing if it did."""
    env = subprocess_env()
    result = subprocess.run(
        [sys.executable, "manage.py", name],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_demo_prints_the_reference_flow():
    out = run_command("approval_demo")
    for expected in (
        "=== Zart Approval Workflow Example ===",
        "Starting execution 'approval-demo-",
        "Requester: Bob",
        "Resource:  staging-environment",
        "Reason:    Need to test the new deployment pipeline",
        "Execution is waiting for manager approval...",
        "(Simulating manager delivering the event after 2 seconds)",
        "Manager decision: ApprovalDecision(approved=True, reviewer='Alice (Manager)'",
        "Execution completed!",
        "Decision:  approved",
        "Reviewer:  Alice (Manager)",
        "Comment:   Approved for testing purposes",
    ):
        assert expected in out, out
    assert out.index("waiting for manager approval") < out.index("Execution completed!")


def test_order_demo_refunds_the_orders_that_failed():
    bob, carol, dan = run_command("order_demo").split("order-demo-")[1:4]
    assert "Bob orders a laptop -> completed" in bob and "note: confirmed by Bob" in bob
    assert "Carol orders a phone -> failed" in carol
    assert "failed at: reserve-item" in carol
    assert "refunded 800 EUR to Carol" in carol and "a phone is out of stock" in carol
    assert "Dan orders a desk -> failed" in dan and "failed at: (the function)" in dan
    assert "refunded 300 EUR to Dan" in dan and "withdrawn by the customer" in dan
    assert "steps: now (completed), uuid4 (completed), charge-card (completed)" in dan


def test_children_demo_prints_the_accounts_and_the_tree():
    out = run_command("children_demo")
    for expected in (
        "=== Zart Child Executions Example ===",
        "Execution completed! Accounts:",
        "  ana    ana@example.com",
        "  chen   chen@example.com",
        "(onboard-team, completed): start-child:onboarding-demo-",
        "-ben (create-account, completed): reserve-username, send-welcome",
    ):
        assert expected in out, out


def test_quote_demo_prices_in_parallel_and_prints_in_call_order():
    out = run_command("quote_demo")
    for expected in (
        "=== Zart Parallel Steps Example ===",
        "Quote for Acme:",
        "  widget        2.50",
        "  flange        3.10",
        "  total        26.04",
        "Recorded steps, in call order: price-lookup, price-lookup#2, price-lookup#3,"
        " price-lookup#4, price-lookup#5",
    ):
        assert expected in out, out


def test_async_demo_converts_from_async_code_and_shows_the_timed_out_attempt():
    out = run_command("async_demo")
    for expected in (
        "=== Zart Async Workflow Example ===",
        "Rates fetched; waiting for the customer's confirmation...",
        "  total:     1760.00 EUR",
        "  status:    booked",
        "  reference: CONV-ACME-176000",
        "  fetch-rate (completed)",
        "  fetch-rate#2 (completed, 2 attempts: the first timed out)",
        "  fetch-rate#3 (completed)",
        "  confirm (completed)",
        "  book-conversion (completed)",
    ):
        assert expected in out, out


@pytest.fixture
def stubborn_worker(tmp_path, settings, monkeypatch) -> Path:
    """The demos' worker replaced by a process that ignores SIGTERM, given 0.5 s to stop; the
    file it writes its pid to."""
    pid_file = tmp_path / "pid"
    (tmp_path / "manage.py").write_text(
        "import os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"open({str(pid_file)!r}, 'w').write(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    settings.BASE_DIR = tmp_path
    monkeypatch.setattr(demo_worker, "STOP_TIMEOUT", 0.5)
    return pid_file


def started_pid(pid_file: Path) -> int:
    wait_until(lambda: pid_file.exists() and pid_file.read_text(), what="the worker's pid")
    return int(pid_file.read_text())


def test_a_demo_worker_that_ignores_sigterm_is_killed_and_the_demo_says_so(stubborn_worker):
    """The demos stop their worker with SIGTERM; one that does not stop must not outlive the
    demo (it would hold the database and the terminal), and the demo must fail saying why."""
    with pytest.raises(CommandError, match="did not stop within 0.5 s of SIGTERM"):
        with running_worker("stubborn.log"):
            pid = started_pid(stubborn_worker)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_demo_that_fails_shows_its_own_error_and_still_kills_a_stubborn_worker(
    stubborn_worker,
):
    with pytest.raises(LookupError, match="the demo's own failure"):
        with running_worker("stubborn.log"):
            pid = started_pid(stubborn_worker)
            raise LookupError("the demo's own failure")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

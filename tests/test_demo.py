"""The README's main job: the approval demo, end to end, with its own background worker."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection

from tests.conftest import ROOT


def run_demo(command: str) -> str:
    """Run ``manage.py <command>`` on the test database; what it printed."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ZART_DB_NAME": str(connection.settings_dict["NAME"]),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_demo_prints_the_reference_flow():
    out = run_demo("approval_demo")
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


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_quote_demo_prices_in_parallel_and_prints_in_call_order():
    out = run_demo("quote_demo")
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

"""Durable tasks whose code changes between deploys. The version is ``ZART_TEST_CODE`` in the
environment of the process that runs them, so a worker process started with another value is a
deploy of other code; a worker started with ``ZART_TEST_WORKFLOW_MODULES=tests.workflows`` has
none of these tasks (code from before they were added). Step bodies log "start X" / "done X"."""

from __future__ import annotations

import os

from tests.workflows import Job, record
from zart_django import durable, patched, step
from zart_django.approvals import wait_for_approval

PATCH = "add-check-budget"


def code() -> str:
    """The version of this module's code the running process has."""
    return os.environ.get("ZART_TEST_CODE", "v1")


def _ran(job: Job, name: str) -> str:
    record(job, f"start {name}")
    record(job, f"done {name}")
    return f"{name} ok"


@step("prepare")
def prepare(job: Job) -> str:
    return _ran(job, "prepare")


@step("check-budget")
def check_budget(job: Job) -> str:
    return _ran(job, "check-budget")


@step("provision")
def provision(job: Job) -> str:
    return _ran(job, "provision")


def adds_the_budget_check() -> bool:
    """Whether this version runs check-budget before the approval: "v1" does not; "patched"
    does behind ``patched(PATCH)``; "unpatched" does for everyone (a mismatch for executions
    parked by v1); "cleaned" does for everyone, the patch removed once v1's executions ended."""
    version = code()
    if version == "patched":
        return patched(PATCH)
    return version in ("unpatched", "cleaned")


@durable("deploy-approval")
def deploy_approval(job: Job) -> dict:
    """prepare, (check-budget, by version), a manager's approval, provision if approved."""
    prepare(job)
    budget = check_budget(job) if adds_the_budget_check() else None
    decision = wait_for_approval("manager")
    if decision.approved:
        provision(job)
    return {"budget": budget, "approved": decision.approved, "reviewer": decision.reviewer}


@durable("deploy-new")
def deploy_new(job: Job) -> str:
    """A task a deploy adds: workers started before it have no code for it."""
    prepare(job)
    return provision(job)

"""Durable tasks for recorded values, waits for the first of several events and compensation.
Like tests/workflows.py, bodies log to the job's file so a test can count what ran, across
processes and crashes."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from tests.workflows import Approval, Job, _body, first, hold_if_asked, record, second
from zart_django import (
    EventTimeout,
    Failure,
    capture,
    durable,
    now,
    random,
    step,
    uuid4,
    wait_for_any,
    wait_for_event,
)


@dataclass
class Quote:
    amount: int
    currency: str


def quote() -> Quote:
    return Quote(secrets.randbelow(1000), "EUR")


@durable("recorded-values")
def recorded_values(job: Job) -> dict:
    """first, then four recorded values (logged on every replay), second, a wait for "go"."""
    first(job)
    values = {
        "now": now().isoformat(),
        "uuid": str(uuid4()),
        "random": random(),
        "token": capture("token", lambda: secrets.token_hex(8)),
        "quote": capture("quote", quote).amount,
    }
    record(job, "values " + json.dumps(values, sort_keys=True))
    hold_if_asked(job, "after-values")
    second(job)
    wait_for_event("go")
    return values


SEEN_QUOTES: list[list[Quote]] = []


def next_quote() -> Quote:
    return Quote(len(SEEN_QUOTES), "EUR")


@durable("values-occurrences")
def values_occurrences() -> list[str]:
    """Two captures of one name, kept in SEEN_QUOTES on each run; a wait; two uuid4s."""
    quotes = [capture("quote", next_quote) for _ in range(2)]
    SEEN_QUOTES.append(quotes)
    wait_for_event("go")
    return [str(uuid4()), str(uuid4())]


@step("stamps")
def stamps() -> list[str]:
    return [str(uuid4()), str(uuid4())]


@durable("values-in-step")
def values_in_step() -> list[str]:
    return stamps()


@durable("values-failing")
def values_failing() -> str:
    return capture("broken", lambda: 1 / 0)


@durable("first-of", events={"approved": Approval})
def first_of(job: Job) -> list:
    """first, the first of "approved" (an Approval) and "withdrawn" (a str), second."""
    first(job)
    name, payload = wait_for_any(["approved", "withdrawn"], timeout="1h", type={"withdrawn": str})
    record(job, f"chose {name}")
    hold_if_asked(job, "after-choice")
    second(job)
    return [name, payload]


@durable("both-of", events={"approved": Approval})
def both_of(job: Job) -> list:
    """Two waits for the first of "approved" and "withdrawn": the second gets the other one."""
    one = wait_for_any(["approved", "withdrawn"])
    other = wait_for_any(["withdrawn", "approved"])
    return [one, other]


@durable("first-of-or-late")
def first_of_or_late(job: Job) -> str:
    try:
        name, _ = wait_for_any(["approved", "withdrawn"], timeout="120s")
    except EventTimeout as exc:
        return f"timed out: {exc}"
    return name


@durable("first-of-reserved")
def first_of_reserved(job: Job) -> str:
    name, _ = wait_for_any(["approved", "approval:manager"])
    return name


@step("charge")
def charge(job: Job) -> str:
    return _body(job, "charge")


@step("provision")
def provision(job: Job) -> str:
    record(job, "start provision")
    if job.fail_times:
        raise RuntimeError("no capacity left")
    return "provisioned"


@step("refund")
def refund(job: Job, reason: str) -> str:
    return _body(job, "refund") + f": {reason}"


@step("notify")
def notify(job: Job) -> str:
    return _body(job, "notify")


def undo_order(job: Job, failure: Failure) -> dict:
    """The saga's compensation: refund the charge, then tell the customer."""
    if failure.timed_out:
        wait_for_event("refund-approved")  # the execution's deadline passed: events still count
    return {
        "refund": refund(job, failure.error),
        "notify": notify(job),
        "failed_step": failure.step,
        "timed_out": failure.timed_out,
    }


@durable("order-saga", timeout="1h", on_failure=undo_order)
def order_saga(job: Job) -> str:
    """charge, provision (fails while ``job.fail_times``), then waits for "shipped"."""
    charge(job)
    provision(job)
    wait_for_event("shipped")
    return "shipped"


def broken_undo(job: Job, failure: Failure) -> str:
    refund(job, failure.error)
    raise RuntimeError("the refund service is down")


@durable("order-saga-broken-undo", on_failure=broken_undo)
def order_saga_broken_undo(job: Job) -> str:
    charge(job)
    return provision(job)

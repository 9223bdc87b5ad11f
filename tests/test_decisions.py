"""Only ``decide`` decides, and a decision never contradicts what the workflow did.

Issue 7, items 1 to 3 and 9: an approval cannot be completed around ``decide`` (whenever the event
arrives and whoever sends it); a decision and the wait's expiry are serialized; a decision and a
cancel are serialized; two offers of one event answer "already delivered", never a 500.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from tests.approval_helpers import make_user, snapshot
from tests.conftest import wait_until
from tests.workflows import Approval, Job, Quick
from zart_django import (
    DurableScheduler,
    EventReserved,
    ExecutionFinished,
    ExecutionResuming,
    ZartError,
)
from zart_django.approvals import (
    ApprovalClosed,
    ApprovalDecision,
    ApprovalNotFound,
    decide,
)
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest
from zart_django.models import Event, Execution, StepResult
from zart_django.testing import advance_time, run_until_idle


def outcome_of(action: Callable[[], Any]) -> str:
    """ "won" if ``action`` succeeded, else the name of the zart error it raised."""
    try:
        action()
    except ZartError as exc:
        return type(exc).__name__
    finally:
        connections.close_all()
    return "won"


FORGED = ApprovalDecision(True, "Alice", "forged")


def parked(execution_id: str, seconds: float) -> DurableScheduler:
    """Start a ``quick-approval`` that expires after ``seconds`` and run it until it waits."""
    scheduler = DurableScheduler()
    scheduler.start(execution_id, "quick-approval", Quick(seconds))
    run_until_idle()
    return scheduler


@pytest.mark.django_db
class TestOnlyDecideDecides:
    @pytest.mark.parametrize("moment", ["before the wait", "while parked", "after a decision"])
    def test_offer_event_from_code_is_refused_whenever_it_arrives(self, moment, manager):
        scheduler = DurableScheduler()
        scheduler.start("o-1", "quick-approval", Quick(3600))
        if moment != "before the wait":
            run_until_idle()
        if moment == "after a decision":
            decide("o-1", manager, approved=False)
        before = snapshot("o-1")
        for payload in (FORGED, {"garbage": True}):
            with pytest.raises(EventReserved, match="decide"):
                scheduler.offer_event("o-1", "approval:ok", payload)
        assert snapshot("o-1") == before

    def test_a_second_level_cannot_be_decided_while_the_first_is_pending(self, manager):
        scheduler = DurableScheduler()
        scheduler.start("o-2", "two-levels", Quick(0))
        run_until_idle()
        before = snapshot("o-2")
        with pytest.raises(EventReserved):
            scheduler.offer_event("o-2", "approval:director", FORGED)
        with pytest.raises(ApprovalNotFound):
            decide("o-2", manager, approved=True, event="director")
        assert snapshot("o-2") == before
        decide("o-2", manager, approved=True, event="manager")
        run_until_idle()
        decide("o-2", manager, approved=False, event="director")
        run_until_idle()
        assert scheduler.wait_completion("o-2", timeout=1) == (
            "Alice Manager then Alice Manager: False"
        )
        assert ApprovalRecord.objects.filter(execution_id="o-2").count() == 2

    def test_the_api_refuses_an_early_approval_event_from_a_user_who_may_add_events(self):
        DurableScheduler().start("o-3", "quick-approval", Quick(3600))
        client = APIClient()
        client.force_authenticate(
            make_user("ops", "zart_django.view_execution", "zart_django.add_event")
        )
        before = snapshot("o-3")
        for name in ("approval:ok", "approval%3Aok"):
            response = client.post(
                f"/api/executions/o-3/events/{name}/",
                {"payload": {"approved": True, "reviewer": "Alice", "comment": ""}},
                format="json",
            )
            assert response.status_code == 403, response.content
            assert "POST /api/approvals/o-3/decide/" in response.json()["detail"]
        assert snapshot("o-3") == before
        run_until_idle()
        assert Execution.objects.get(pk="o-3").status == "waiting"


@pytest.mark.django_db
class TestDecisionAndExpiry:
    def test_a_decision_after_the_deadline_is_refused_as_expired(self, manager):
        scheduler = parked("x-1", 60)
        advance_time("61s")
        before = snapshot("x-1")
        with pytest.raises(ApprovalClosed, match="expired"):
            decide("x-1", manager, approved=True)
        assert snapshot("x-1") == before
        run_until_idle()
        assert scheduler.wait_completion("x-1", timeout=1) == "expired"
        assert ApprovalRequest.objects.get(execution_id="x-1").status == "expired"
        assert not ApprovalRecord.objects.filter(execution_id="x-1").exists()

    def test_a_decision_before_the_deadline_wins_even_if_the_worker_comes_late(self, manager):
        scheduler = parked("x-2", 60)
        decide("x-2", manager, approved=True)
        advance_time("1h")  # the worker resumes it long after the deadline
        run_until_idle()
        assert scheduler.wait_completion("x-2", timeout=1) == "approved"

    def test_a_decision_after_the_wait_timed_out_is_refused(self, manager):
        parked("x-3", 60)
        advance_time("61s")
        run_until_idle()
        with pytest.raises((ApprovalClosed, ExecutionFinished)):
            decide("x-3", manager, approved=True)
        assert not ApprovalRecord.objects.filter(execution_id="x-3").exists()

    def test_the_api_answers_409_expired(self, manager):
        DurableScheduler().start("x-4", "quick-approval", Quick(60))
        run_until_idle()
        advance_time("61s")
        client = APIClient()
        client.force_authenticate(manager)
        response = client.post("/api/approvals/x-4/decide/", {"approved": True}, format="json")
        assert response.status_code == 409
        assert "expired" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_decisions_racing_the_deadline_agree_with_what_the_workflow_did(manager, start_worker):
    """Decisions land within ±150 ms of their wait's deadline while a real worker times the waits
    out: every decision accepted is the one the workflow took, every refused one says expired."""
    scheduler = DurableScheduler()
    ids = [f"race-x-{n}" for n in range(24)]
    for execution_id in ids:
        scheduler.start(execution_id, "quick-approval", Quick(2))
    start_worker("--concurrency", "8")
    wait_until(
        lambda: (
            StepResult.objects.filter(execution_id__in=ids, name="approval:ok").count() == len(ids)
        ),
        timeout=60,
        what="every execution to wait for its approval",
    )
    deadlines = {
        s.execution_id: s.deadline.timestamp()
        for s in StepResult.objects.filter(execution_id__in=ids, name="approval:ok")
    }

    def decide_near_the_deadline(execution_id: str) -> str:
        time.sleep(max(0.0, deadlines[execution_id] + random.uniform(-0.15, 0.15) - time.time()))
        return outcome_of(lambda: decide(execution_id, manager, approved=True))

    with ThreadPoolExecutor(len(ids)) as pool:
        answers = dict(zip(ids, pool.map(decide_near_the_deadline, ids), strict=True))
    wait_until(
        lambda: Execution.objects.filter(pk__in=ids, finished_at__isnull=False).count() == len(ids),
        timeout=60,
        what="every execution to finish",
    )
    for execution_id in ids:
        output = scheduler.wait_completion(execution_id, timeout=1)
        recorded = ApprovalRecord.objects.filter(execution_id=execution_id).exists()
        assert (answers[execution_id], recorded, output) in {
            ("won", True, "approved"),
            ("ApprovalClosed", False, "expired"),
        }, execution_id


@pytest.mark.django_db
class TestDecisionAndCancel:
    def test_a_cancel_after_a_decision_is_refused_until_the_execution_acted_on_it(self, manager):
        scheduler = parked("c-1", 3600)
        decide("c-1", manager, approved=True)
        with pytest.raises(ExecutionResuming):
            scheduler.cancel("c-1")
        client = APIClient()
        client.force_authenticate(make_user("ops", "zart_django.change_execution"))
        assert client.post("/api/executions/c-1/cancel/").status_code == 409
        run_until_idle()
        assert scheduler.wait_completion("c-1", timeout=1) == "approved"

    def test_a_decision_after_a_cancel_is_refused(self, manager):
        scheduler = parked("c-2", 3600)
        scheduler.cancel("c-2")
        with pytest.raises(ApprovalClosed):
            decide("c-2", manager, approved=True)
        assert not ApprovalRecord.objects.filter(execution_id="c-2").exists()

    def test_an_ordinary_event_does_not_block_a_cancel(self, scheduler, job):
        scheduler.start("c-3", "three-steps", job)
        run_until_idle()
        scheduler.offer_event("c-3", "go", Approval(True, "x"))
        scheduler.cancel("c-3")
        assert scheduler.get("c-3").status == "cancelled"


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("round_", range(3))
def test_cancel_and_decide_racing_have_exactly_one_winner(manager, round_):
    scheduler = DurableScheduler()
    ids = [f"race-c-{n}" for n in range(16)]
    for execution_id in ids:
        scheduler.start(execution_id, "quick-approval", Quick(3600))
    run_until_idle()
    calls: list[tuple[str, str, Callable[[], Any]]] = []
    for execution_id in ids:
        calls.append((execution_id, "decide", lambda e=execution_id: decide(e, manager, True)))
        calls.append((execution_id, "cancel", lambda e=execution_id: scheduler.cancel(e)))
    answers = all_at_once([call for _, _, call in calls])
    run_until_idle()
    by_execution: dict[str, dict[str, str]] = {e: {} for e in ids}
    for (execution_id, what, _), answer in zip(calls, answers, strict=True):
        by_execution[execution_id][what] = answer
    for execution_id, answer in by_execution.items():
        status = Execution.objects.get(pk=execution_id).status
        recorded = ApprovalRecord.objects.filter(execution_id=execution_id).exists()
        assert (answer["decide"], answer["cancel"], recorded, status) in {
            ("won", "ExecutionResuming", True, "completed"),
            ("ApprovalClosed", "won", False, "cancelled"),
        }, execution_id


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("round_", range(5))
def test_offers_of_one_event_racing_answer_already_delivered(tmp_path, round_):
    scheduler = DurableScheduler()
    ids = [f"race-o-{n}" for n in range(8)]
    for execution_id in ids:
        scheduler.start(execution_id, "three-steps", Job(log=str(tmp_path / "log")))
    run_until_idle()
    offers = [execution_id for execution_id in ids for _ in range(4)]
    answers = all_at_once(
        [
            lambda e=execution_id: scheduler.offer_event(e, "go", Approval(True, "r"))
            for execution_id in offers
        ]
    )
    for execution_id in ids:
        mine = [a for e, a in zip(offers, answers, strict=True) if e == execution_id]
        assert sorted(mine) == ["EventAlreadyDelivered"] * 3 + ["won"], execution_id
    assert Event.objects.count() == len(ids)


def all_at_once(actions: list[Callable[[], Any]]) -> list[str]:
    """Run each action on its own thread and connection, released together; their outcomes."""
    start = threading.Barrier(len(actions))

    def run(action: Callable[[], Any]) -> str:
        start.wait(timeout=30)
        return outcome_of(action)

    with ThreadPoolExecutor(len(actions)) as pool:
        return list(pool.map(run, actions))

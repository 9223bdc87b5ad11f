"""Approval mail (opened, reminded, escalated, reassigned) and the reminder and escalation timers,
with the engine's clock moved forward, and across a worker SIGKILLed between two reminders."""

from __future__ import annotations

import re
from datetime import timedelta
from email import message_from_string
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core import mail
from rest_framework.test import APIClient

from tests.approval_helpers import make_user
from tests.conftest import wait_until
from tests.workflows import Reminded, reminded_approval
from zart_django.approvals import ApprovalClosed, can_decide, decide
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest, RequestStatus
from zart_django.approvals.notifications import notify_reassigned, recipients
from zart_django.approvals.waiting import Timers
from zart_django.models import StepResult
from zart_django.testing import advance_time, run_until_idle

PERM = "zart_approvals.decide_approval"
LINK = "https://ops.example.com/approvals/requests/{}/"


@pytest.fixture
def people():
    """alice decides directly, carol through a group; bob decides but has no address; clerk may
    not decide."""
    alice = make_user("alice", PERM)
    alice.email = "alice@example.com"
    alice.save()
    bob = make_user("bob", PERM)
    carol = make_user("carol")
    carol.email = "carol@example.com"
    carol.save()
    deciders = Group.objects.create(name="deciders")
    deciders.permissions.add(Permission.objects.get(codename="decide_approval"))
    carol.groups.add(deciders)
    clerk = make_user("clerk")
    clerk.email = "clerk@example.com"
    clerk.save()
    return {"alice": alice, "bob": bob, "carol": carol, "clerk": clerk}


def start(scheduler, execution_id: str, **timers) -> None:
    scheduler.start_for(reminded_approval, execution_id, Reminded(**timers))
    run_until_idle()


def notices(execution_id: str) -> list[tuple[str, str]]:
    """(notice, recipient) of every mail sent about the execution, in order."""
    return [
        (m.extra_headers["X-Zart-Notice"], m.to[0])
        for m in mail.outbox
        if m.extra_headers["X-Zart-Execution"] == execution_id
    ]


def step_names(execution_id: str) -> list[str]:
    return list(
        StepResult.objects.filter(execution_id=execution_id, kind="step")
        .order_by("position")
        .values_list("name", flat=True)
    )


EVERYONE = ["alice@example.com", "carol@example.com"]


@pytest.mark.django_db
class TestMail:
    def test_an_opened_request_mails_who_may_decide_it_with_the_link(self, scheduler, people):
        start(scheduler, "n-open", timeout="2d")
        assert notices("n-open") == [("opened", to) for to in EVERYONE]
        message = mail.outbox[0]
        assert message.subject == "Approval needed: Deploy <prod> & more"
        assert LINK.format("n-open") in message.body
        assert "Decide before" in message.body
        html, mimetype = message.alternatives[0]
        assert mimetype == "text/html"
        assert f'href="{LINK.format("n-open")}"' in html
        assert "Deploy &lt;prod&gt; &amp; more" in html
        request = ApprovalRequest.objects.get(execution_id="n-open")
        assert request.deadline == request.created_at + timedelta(days=2)

    def test_users_without_permission_or_address_get_nothing(self, scheduler, people):
        start(scheduler, "n-who")
        request = ApprovalRequest.objects.get(execution_id="n-who")
        assert [u.username for u in recipients(request)] == ["alice", "bob", "carol"]
        assert {to for _, to in notices("n-who")} == set(EVERYONE)

    def test_mail_can_be_turned_off(self, scheduler, people, settings):
        settings.ZART = {**settings.ZART, "APPROVALS_EMAIL": False}
        start(scheduler, "n-off", remind_every="1h")
        advance_time("1h1m")
        run_until_idle()
        assert notices("n-off") == []
        assert step_names("n-off") == ["approval-opened", "approval-reminder-1"]

    def test_reassigned_mails_the_new_assignee(self, scheduler, people):
        start(scheduler, "n-re")
        request = ApprovalRequest.objects.get(execution_id="n-re")
        mail.outbox.clear()
        assert notify_reassigned(request, people["alice"], people["carol"], "on leave") == 1
        assert notices("n-re") == [("reassigned", "carol@example.com")]
        assert "alice handed this approval to you: on leave" in mail.outbox[0].body


@pytest.mark.django_db
class TestTimers:
    def test_three_hours_bring_three_reminders_in_order_and_no_more(self, scheduler, people):
        start(scheduler, "n-rem", timeout="1d", remind_every="1h")
        advance_time("3h1m")
        run_until_idle()
        run_until_idle()
        expected = [("opened", to) for to in EVERYONE]
        for n in (1, 2, 3):
            expected += [(f"reminder-{n}", to) for to in EVERYONE]
        assert notices("n-rem") == expected
        assert step_names("n-rem") == [
            "approval-opened",
            "approval-reminder-1",
            "approval-reminder-2",
            "approval-reminder-3",
        ]
        decide("n-rem", people["alice"], approved=True)
        run_until_idle()
        assert scheduler.get("n-rem").output == "approved"
        assert len(notices("n-rem")) == len(expected)

    def test_a_decision_due_with_a_reminder_is_taken_not_refused(self, scheduler, people):
        start(scheduler, "n-race", timeout="1d", remind_every="1h")
        advance_time("1h1m")  # the reminder is due, no worker has woken for it yet
        decide("n-race", people["carol"], approved=False)
        run_until_idle()
        assert scheduler.get("n-race").output == "rejected"
        assert [n for n, _ in notices("n-race")] == ["opened", "opened"]

    def test_a_decision_after_a_reminder_is_taken_by_the_next_wait(self, scheduler, people):
        start(scheduler, "n-after", timeout="1d", remind_every="1h")
        advance_time("1h1m")
        run_until_idle()
        decide("n-after", people["alice"], approved=True)
        run_until_idle()
        assert scheduler.get("n-after").output == "approved"

    def test_a_decision_while_a_reminder_is_retried_is_taken_by_the_next_wait(
        self, scheduler, people, settings
    ):
        start(scheduler, "n-gap", timeout="1d", remind_every="1h")
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 1
        advance_time("1h1m")
        run_until_idle()  # the reminder's wait ended, its mail failed: no wait until the retry
        reminder = StepResult.objects.get(execution_id="n-gap", name="approval-reminder-1")
        assert reminder.status == "retrying"
        decide("n-gap", people["alice"], approved=True)
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        advance_time("1m")
        run_until_idle()
        assert scheduler.get("n-gap").output == "approved"

    def test_a_decision_after_the_final_timeout_is_refused_with_no_worker_awake(
        self, scheduler, people
    ):
        start(scheduler, "n-late", timeout="3h", remind_every="1h")
        advance_time("1h1m")
        run_until_idle()  # reminder 1; the execution parks until reminder 2
        advance_time("2h")  # past the final timeout, no worker woke for reminder 2
        with pytest.raises(ApprovalClosed, match="expired"):
            decide("n-late", people["alice"], approved=True)
        client = APIClient()
        client.force_authenticate(people["alice"])
        response = client.post("/api/approvals/n-late/decide/", {"approved": True}, format="json")
        assert response.status_code == 409
        assert "expired" in response.json()["detail"]
        assert not ApprovalRecord.objects.filter(execution_id="n-late").exists()
        run_until_idle()
        assert scheduler.get("n-late").output == "expired"
        assert ApprovalRequest.objects.get(execution_id="n-late").status == RequestStatus.EXPIRED

    def test_escalation_adds_recipients_and_does_not_expire(self, scheduler, people):
        dave = make_user("dave", PERM)
        dave.email = "dave@example.com"
        dave.save()
        Group.objects.get(name="deciders").user_set.remove(people["carol"])
        start(
            scheduler,
            "n-esc",
            timeout="1d",
            escalate_after="2h",
            escalate_to=["dave", "clerk"],
        )
        advance_time("2h1m")
        run_until_idle()
        request = ApprovalRequest.objects.get(execution_id="n-esc")
        assert request.escalated_to == ["clerk", "dave"]
        assert request.status == RequestStatus.PENDING
        escalated = [to for n, to in notices("n-esc") if n == "escalated"]
        # escalation makes them assignees: clerk, without the permission, may decide it now
        assert escalated == ["alice@example.com", "clerk@example.com", "dave@example.com"]
        assert can_decide(User.objects.get(username="clerk"), request)
        assert "escalated to clerk, dave" in mail.outbox[-1].body
        assert scheduler.get("n-esc").status == "waiting"

    def test_the_final_timeout_still_expires_the_request(self, scheduler, people):
        start(
            scheduler,
            "n-exp",
            timeout="3h",
            remind_every="1h",
            escalate_after="150m",
            escalate_to=["alice"],
        )
        advance_time("3h1m")
        run_until_idle()
        assert scheduler.get("n-exp").output == "expired"
        assert ApprovalRequest.objects.get(execution_id="n-exp").status == RequestStatus.EXPIRED
        assert step_names("n-exp") == [
            "approval-opened",
            "approval-reminder-1",
            "approval-reminder-2",
            "approval-escalation",
        ]

    def test_timers_are_checked(self):
        with pytest.raises(ValueError, match="positive"):
            Timers.given("0s", None, ())
        with pytest.raises(ValueError, match="go together"):
            Timers.given(None, "1h", ())
        with pytest.raises(ValueError, match="go together"):
            Timers.given(None, None, ["dave"])


def mailed(folder: Path) -> list[str]:
    """The X-Zart-Notice of every message the file backend wrote, in no particular order."""
    notices = []
    for path in folder.glob("*.log"):
        for part in re.split(r"\n-{79}\n", path.read_text()):
            if part.strip():
                notices.append(message_from_string(part)["X-Zart-Notice"])
    return notices


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(90)
def test_a_worker_killed_between_reminders_sends_no_finished_reminder_twice(
    scheduler, people, start_worker, monkeypatch, tmp_path
):
    folder = tmp_path / "mail"
    folder.mkdir()
    monkeypatch.setenv("ZART_TEST_EMAIL_DIR", str(folder))
    Group.objects.get(name="deciders").user_set.remove(people["carol"])
    scheduler.start_for(reminded_approval, "n-kill", Reminded(remind_every="1s"))
    doomed = start_worker()

    def completed(name: str) -> bool:
        return StepResult.objects.filter(
            execution_id="n-kill", name=name, status="completed"
        ).exists()

    wait_until(lambda: completed("approval-reminder-2"), what="two reminders")
    doomed.kill()
    names = ["opened", *(f"reminder-{k}" for k in range(1, 100))]
    finished = [n for n in names if completed(f"approval-{n}")]
    start_worker()
    next_one = f"approval-reminder-{len(finished)}"  # "opened" is finished[0]
    wait_until(lambda: completed(next_one), what="a reminder after the restart")
    decide("n-kill", people["alice"], approved=True)
    wait_until(lambda: scheduler.get("n-kill").status == "completed", what="the decision")
    sent = mailed(folder)
    for notice in finished:
        assert sent.count(notice) == 1, (notice, sorted(sent))
    attempts = StepResult.objects.filter(execution_id="n-kill", kind="step").values_list(
        "attempts", flat=True
    )
    assert set(attempts) == {1}

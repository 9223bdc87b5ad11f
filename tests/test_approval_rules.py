"""Issue 10, the model: who may decide (started_by and segregation of duties, assignees), how many
must (N-of-M votes), handing a request on (reassignment), and decision data; each rule through the
admin, the inbox and the REST API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django import forms
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.models import Group, Permission, User
from django.db import DatabaseError, connection, transaction
from django.dispatch import receiver
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from tests.approval_helpers import DOORS, decide_through, logged_in, make_user, snapshot, through
from tests.test_decisions import all_at_once
from zart_django import DurableScheduler, durable
from zart_django.approvals import (
    ApprovalAlreadyDecided,
    ApprovalDecision,
    ApprovalPermissionDenied,
    decidable_by,
    decide,
    wait_for_approval,
)
from zart_django.approvals.assignees import is_assignee, normalize, recipients, resolve
from zart_django.approvals.errors import ApprovalFormMissing, ApprovalInvalid
from zart_django.approvals.models import ApprovalRecord, ApprovalRequest, Reassignment
from zart_django.approvals.services import reassign
from zart_django.approvals.signals import approval_reassigned
from zart_django.models import Event, Execution
from zart_django.testing import run_until_idle

pytestmark = pytest.mark.django_db

DECIDE = "zart_approvals.decide_approval"


@dataclass
class Expense:
    amount: int
    manager: str = ""


def summary(decision: ApprovalDecision) -> str:
    """What the test tasks return: the verdict, the deciding reviewer and every vote."""
    votes = ",".join(
        f"{v['reviewer']}{'+' if v['approved'] else '-'}{'<' + v['delegated_by'] if v['delegated_by'] else ''}"
        for v in decision.votes
    )
    return f"{'approved' if decision.approved else 'rejected'} by {decision.reviewer} [{votes}]"


@durable("rules-plain")
def plain(expense: Expense) -> str:
    return summary(wait_for_approval())


@durable("rules-own")
def own(expense: Expense) -> str:
    return summary(wait_for_approval(allow_requester=True))


@durable("rules-assigned")
def assigned(expense: Expense) -> str:
    return summary(
        wait_for_approval(assignees=["bob", "group:finance", "perm:zart_django.change_execution"])
    )


@durable("rules-manager")
def managed(expense: Expense) -> str:
    return summary(wait_for_approval(assignees=lambda e: [e.manager]))


@durable("rules-two")
def two(expense: Expense) -> str:
    return summary(wait_for_approval(required=2))


class PaymentForm(forms.Form):
    """Decision data: what to pay and when."""

    amount = forms.DecimalField(max_digits=8, decimal_places=2)
    pay_on = forms.DateField()


@durable("rules-form")
def with_form(expense: Expense) -> dict[str, Any]:
    decision = wait_for_approval(form=PaymentForm)
    return {"approved": decision.approved, "data": decision.data}


@durable("rules-local-form")
def local_form(expense: Expense) -> bool:
    class Local(forms.Form):
        note = forms.CharField()

    return wait_for_approval(form=Local).approved


def person(username: str, *perms: str, **kwargs: Any) -> User:
    """A staff user (so the admin door opens) who may view executions, holding ``perms``."""
    return make_user(username, "zart_django.view_execution", *perms, staff=True, **kwargs)


def parked(task: Any, execution_id: str, started_by: Any = None, **input: Any) -> None:
    DurableScheduler().start_for(task, execution_id, Expense(100, **input), started_by=started_by)
    run_until_idle()
    assert Execution.objects.get(pk=execution_id).status == "waiting"


def output(execution_id: str) -> Any:
    run_until_idle()
    return DurableScheduler().wait_completion(execution_id, timeout=1)


def inbox_ids(user: User) -> dict[str, list[str]]:
    """The execution ids in ``user``'s inbox, as the inbox page and the API list them."""
    page = logged_in(user).get(reverse("zart_approvals:inbox")).context["requests"]
    client = APIClient()
    client.force_authenticate(user)
    listed = client.get("/api/approvals/").json()["results"]
    return {
        "inbox": sorted(r.execution_id for r in page),
        "api": sorted(r["execution_id"] for r in listed),
    }


class TestStartedBy:
    def test_start_records_a_user_or_a_username_and_nothing_for_code(self):
        alice = make_user("alice")
        scheduler = DurableScheduler()
        assert scheduler.start_for(plain, "s-1", Expense(1), started_by=alice).started_by == "alice"
        assert (
            scheduler.start("s-2", "rules-plain", Expense(1), started_by="bob").started_by == "bob"
        )
        assert scheduler.start_for(plain, "s-3", Expense(1)).started_by == ""
        assert Execution.objects.get(pk="s-1").started_by == "alice"
        assert scheduler.get("s-2").started_by == "bob"

    def test_a_repeated_start_keeps_the_first_starter(self):
        scheduler = DurableScheduler()
        scheduler.start_for(plain, "s-4", Expense(1), started_by="alice")
        again = scheduler.start_for(plain, "s-4", Expense(1), started_by="bob")
        assert (again.created, again.started_by) == (False, "alice")

    def test_the_api_records_the_logged_in_user(self):
        client = APIClient()
        client.force_authenticate(make_user("ops", "zart_django.add_execution"))
        body = {"task": "rules-plain", "execution_id": "s-5", "input": {"amount": 1}}
        response = client.post("/api/executions/", body, format="json")
        assert response.status_code == 201, response.content
        assert response.json()["started_by"] == "ops"
        assert Execution.objects.get(pk="s-5").started_by == "ops"


class TestSegregationOfDuties:
    @pytest.mark.parametrize("door", DOORS)
    def test_the_requester_may_not_decide_their_own_request(self, door):
        alice = person("alice", DECIDE)
        bob = person("bob", DECIDE)
        parked(plain, "sod-1", started_by=alice)
        before = snapshot("sod-1")
        answer = decide_through(door, alice, "sod-1")
        assert answer.status == 403
        assert snapshot("sod-1") == before
        with pytest.raises(ApprovalPermissionDenied, match="you started execution 'sod-1'"):
            decide("sod-1", alice, approved=True)
        assert inbox_ids(alice) == {"inbox": [], "api": []}
        assert inbox_ids(bob) == {"inbox": ["sod-1"], "api": ["sod-1"]}
        assert decide_through(door, bob, "sod-1").status in (201, 302)
        assert output("sod-1") == "approved by bob [bob+]"

    @pytest.mark.parametrize("door", DOORS)
    def test_allow_requester_lets_them(self, door):
        alice = person("alice", DECIDE)
        parked(own, "sod-2", started_by="alice")
        assert inbox_ids(alice) == {"inbox": ["sod-2"], "api": ["sod-2"]}
        assert decide_through(door, alice, "sod-2").status in (201, 302)
        assert output("sod-2") == "approved by alice [alice+]"

    @pytest.mark.parametrize("door", DOORS)
    def test_the_requester_may_not_choose_who_decides(self, door):
        alice = person("alice", DECIDE, "zart_approvals.reassign_approval")
        person("zoe")
        parked(plain, "sod-4", started_by="alice")
        before = snapshot("sod-4")
        answer = reassign_through(door, alice, "sod-4", "zoe")
        assert answer.status == 403
        assert snapshot("sod-4") == before and not Reassignment.objects.exists()
        page = logged_in(alice).get(reverse("zart_approvals:detail", args=["sod-4"]))
        assert page.status_code == 200
        assert not page.context["can_decide"] and not page.context["can_reassign"]

    def test_the_requester_sees_their_request_without_deciding_it(self):
        clerk = make_user("clerk")
        parked(plain, "sod-5", started_by=clerk)
        assert (
            logged_in(clerk).get(reverse("zart_approvals:detail", args=["sod-5"])).status_code
            == 200
        )
        decide("sod-5", person("erin", DECIDE), approved=True)
        history = logged_in(clerk).get(reverse("zart_approvals:history")).context["requests"]
        assert [r.execution_id for r in history] == ["sod-5"]

    def test_the_requester_is_not_a_recipient(self):
        person("alice", DECIDE)
        person("bob", DECIDE)
        parked(plain, "sod-3", started_by="alice")
        request = ApprovalRequest.objects.get(execution_id="sod-3")
        assert [u.username for u in recipients(request)] == ["bob"]


class TestAssignees:
    def test_specs_are_normalized_from_objects_and_strings(self):
        bob = make_user("bob")
        finance = Group.objects.create(name="finance")
        perm = Permission.objects.get(codename="decide_approval")
        assert [normalize(a) for a in (bob, finance, perm)] == [
            "user:bob",
            "group:finance",
            "perm:zart_approvals.decide_approval",
        ]
        assert resolve(["bob", "user:bob", "group:finance"], None) == ["user:bob", "group:finance"]
        assert resolve(lambda value: value, "carol") == ["user:carol"]
        for bad in ("role:x", "perm:nodot", "group:", 42):
            with pytest.raises(ValueError):
                normalize(bad)
        with pytest.raises(ValueError, match="named nobody"):
            resolve(lambda value: [], None)

    def _people(self) -> dict[str, User]:
        finance = Group.objects.create(name="finance")
        people = {
            "bob": person("bob"),
            "carol": person("carol"),
            "dave": person("dave", "zart_django.change_execution"),
            "erin": person("erin", DECIDE),
            "root": person("root"),
        }
        people["carol"].groups.add(finance)
        people["root"].is_superuser = True
        people["root"].save()
        return people

    @pytest.mark.parametrize("door", DOORS)
    def test_users_groups_and_permissions_decide_and_nobody_else(self, door):
        people = self._people()
        for n in range(3):
            parked(assigned, f"as-{n}")
        parked(plain, "as-plain")
        request = ApprovalRequest.objects.get(execution_id="as-0")
        assert request.assignees == [
            "user:bob",
            "group:finance",
            "perm:zart_django.change_execution",
        ]
        assert [u.username for u in recipients(request)] == ["bob", "carol", "dave", "root"]
        mine = ["as-0", "as-1", "as-2"]
        for name in ("bob", "carol", "dave"):
            assert inbox_ids(people[name]) == {"inbox": mine, "api": mine}
        assert inbox_ids(people["erin"]) == {"inbox": ["as-plain"], "api": ["as-plain"]}
        assert inbox_ids(people["root"])["api"] == [*mine, "as-plain"]
        before = snapshot("as-0")
        assert decide_through(door, people["erin"], "as-0").status == 403
        assert snapshot("as-0") == before
        for n, name in enumerate(("bob", "carol", "dave")):
            assert decide_through(door, people[name], f"as-{n}").status in (201, 302)
            assert output(f"as-{n}") == f"approved by {name} [{name}+]"

    def test_a_callable_computes_them_from_the_input_once(self):
        make_user("mia")
        make_user("max")
        parked(managed, "as-m", manager="mia")
        request = ApprovalRequest.objects.get(execution_id="as-m")
        assert request.assignees == ["user:mia"]
        with pytest.raises(ApprovalPermissionDenied, match="not assigned to you"):
            decide("as-m", User.objects.get(username="max"), approved=True)
        decide("as-m", User.objects.get(username="mia"), approved=True)
        assert output("as-m") == "approved by mia [mia+]"

    def test_an_inactive_assignee_may_not_decide(self):
        bob = make_user("bob")
        bob.is_active = False
        bob.save()
        parked(assigned, "as-i")
        assert not is_assignee(bob, ApprovalRequest.objects.get(execution_id="as-i"))
        with pytest.raises(ApprovalPermissionDenied):
            decide("as-i", bob, approved=True)

    def test_an_inbox_page_costs_the_same_queries_however_many_requests(self):
        people = self._people()

        def queries(count: int) -> int:
            ApprovalRequest.objects.all().delete()
            for n in range(count):
                parked(assigned, f"aq-{count}-{n}")
            with CaptureQueriesContext(connection) as captured:
                rows = list(decidable_by(people["carol"])[:50])
                for row in rows:
                    _ = (row.outcome, row.record, row.progress)
            assert len(rows) == count
            return len(captured)

        assert queries(2) == queries(12)


class ObjectPermissionBackend(BaseBackend):
    """Grants ``zart_approvals.decide_approval`` on requests of executions named ``obj-*`` to
    ``olga`` only for that request, as django-guardian or django-rules would."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return (
            isinstance(obj, ApprovalRequest)
            and obj.execution_id.startswith("obj-")
            and user_obj.get_username() == "olga"
            and perm == DECIDE
        )


def test_an_object_permission_from_a_backend_lets_its_holder_decide(settings):
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.test_approval_rules.ObjectPermissionBackend",
    ]
    olga = person("olga")
    parked(plain, "obj-1")
    parked(plain, "other-1")
    with pytest.raises(ApprovalPermissionDenied):
        decide("other-1", olga, approved=True)
    assert decide_through("api", olga, "obj-1").status == 201
    assert output("obj-1") == "approved by olga [olga+]"


class TestVotes:
    @pytest.mark.parametrize("door", DOORS)
    def test_two_approvals_by_distinct_people_approve(self, door):
        alice, bob, carl = (person(n, DECIDE) for n in ("alice", "bob", "carl"))
        parked(two, "v-1")
        assert decide_through(door, alice, "v-1").status in (201, 302)
        run_until_idle()
        request = ApprovalRequest.objects.get(execution_id="v-1")
        assert (request.outcome, request.progress, request.record) == (
            "pending",
            "1 of 2 approvals",
            None,
        )
        assert Execution.objects.get(pk="v-1").status == "waiting"
        assert inbox_ids(alice) == {"inbox": [], "api": []}
        assert inbox_ids(bob) == {"inbox": ["v-1"], "api": ["v-1"]}
        again = decide_through(door, alice, "v-1")
        assert again.status in (409, 302) and "already" in again.text
        with pytest.raises(ApprovalAlreadyDecided, match=r"voted .* already \(1 of 2"):
            decide("v-1", alice, approved=True)
        assert decide_through(door, bob, "v-1").status in (201, 302)
        assert output("v-1") == "approved by bob [alice+,bob+]"
        assert ApprovalRequest.objects.get(execution_id="v-1").progress == "2 of 2 approvals"
        with pytest.raises(ApprovalAlreadyDecided, match="already approved by bob"):
            decide("v-1", carl, approved=True)
        assert ApprovalRecord.objects.filter(execution_id="v-1").count() == 2
        assert Event.objects.filter(execution_id="v-1").count() == 1

    def test_the_first_rejection_rejects(self):
        alice, bob = person("alice", DECIDE), person("bob", DECIDE)
        parked(two, "v-2")
        decide("v-2", alice, approved=True, comment="fine")
        decide("v-2", bob, approved=False, comment="too much")
        assert output("v-2") == "rejected by bob [alice+,bob-]"

    def test_the_api_shows_the_votes_and_progress(self):
        alice = person("alice", DECIDE)
        parked(two, "v-3")
        decide("v-3", alice, approved=True)
        client = APIClient()
        client.force_authenticate(alice)
        body = client.get("/api/approvals/v-3/").json()
        assert (body["required"], body["progress"], body["outcome"]) == (
            2,
            "1 of 2 approvals",
            "pending",
        )
        assert [v["reviewer"] for v in body["votes"]] == ["alice"]
        assert body["decision"] is None

    def test_a_decision_stored_before_votes_existed_replays(self):
        old = {"approved": True, "reviewer": "Alice", "comment": "", "decided_at": ""}
        from zart_django.codec import decode

        assert decode(old, ApprovalDecision) == ApprovalDecision(True, "Alice", "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
@pytest.mark.parametrize("round_", range(3))
def test_voters_at_once_neither_lose_a_vote_nor_both_decide(round_):
    voters = [person(f"voter{n}", DECIDE) for n in range(3)]
    ids = [f"race-v-{n}" for n in range(4)]
    for execution_id in ids:
        DurableScheduler().start_for(two, execution_id, Expense(1))
    run_until_idle()
    calls = [
        (execution_id, lambda e=execution_id, u=voter: decide(e, u, approved=True))
        for execution_id in ids
        for voter in voters
    ]
    answers = all_at_once([call for _, call in calls])
    for execution_id in ids:
        mine = sorted(a for (e, _), a in zip(calls, answers, strict=True) if e == execution_id)
        assert mine == ["ApprovalAlreadyDecided", "won", "won"], execution_id
        assert ApprovalRecord.objects.filter(execution_id=execution_id).count() == 2
        assert Event.objects.filter(execution_id=execution_id).count() == 1
    run_until_idle()
    for execution_id in ids:
        assert DurableScheduler().wait_completion(execution_id, timeout=1).startswith("approved")


def reassign_through(door: str, user: User, execution_id: str, to: str, reason: str = "away"):
    return through(door, user, execution_id, "reassign", {"to": to, "reason": reason})


class TestReassignment:
    @pytest.mark.parametrize("door", DOORS)
    def test_an_assignee_hands_their_assignment_to_a_delegate(
        self, door, django_capture_on_commit_callbacks
    ):
        finance = Group.objects.create(name="finance")
        bob, carol, zoe = person("bob"), person("carol"), person("zoe")
        carol.groups.add(finance)
        parked(assigned, "r-1")
        heard: list[dict[str, Any]] = []

        @receiver(approval_reassigned, weak=False)
        def hear(sender: Any, **kwargs: Any) -> None:
            heard.append(kwargs)

        try:
            with django_capture_on_commit_callbacks(execute=True):
                with_reason = reassign_through(door, bob, "r-1", "zoe", reason="on holiday")
        finally:
            approval_reassigned.disconnect(hear)
        assert with_reason.status in (201, 302), with_reason.text
        request = ApprovalRequest.objects.get(execution_id="r-1")
        assert request.assignees == [
            "group:finance",
            "perm:zart_django.change_execution",
            "!user:bob",
            "user:zoe",
        ]
        entry = Reassignment.objects.get(execution_id="r-1")
        assert (entry.reassigned_by, entry.to, entry.reason) == ("bob", "user:zoe", "on holiday")
        assert [(h["reassigned_by"], h["to"], h["reason"]) for h in heard] == [
            ("bob", "user:zoe", "on holiday")
        ]
        assert heard[0]["request"].pk == request.pk
        assert decide_through(door, bob, "r-1").status == 403
        assert inbox_ids(bob) == {"inbox": [], "api": []}
        assert inbox_ids(zoe) == {"inbox": ["r-1"], "api": ["r-1"]}
        assert inbox_ids(carol) == {"inbox": ["r-1"], "api": ["r-1"]}
        assert decide_through(door, zoe, "r-1").status in (201, 302)
        record = ApprovalRecord.objects.get(execution_id="r-1")
        assert (record.reviewer, record.delegated_by) == ("zoe", "bob")
        assert str(record) == "r-1: approved by zoe (delegated by bob)"
        assert output("r-1") == "approved by zoe [zoe+<bob]"

    @pytest.mark.parametrize("door", DOORS)
    def test_a_group_member_leaves_and_the_group_stays(self, door):
        finance = Group.objects.create(name="finance")
        carol, cid, zoe = person("carol"), person("cid"), person("zoe")
        carol.groups.add(finance)
        cid.groups.add(finance)
        parked(assigned, "r-2")
        assert reassign_through(door, carol, "r-2", "zoe").status in (201, 302)
        request = ApprovalRequest.objects.get(execution_id="r-2")
        assert not is_assignee(carol, request)
        assert is_assignee(cid, request) and is_assignee(zoe, request)
        assert inbox_ids(carol)["api"] == [] and inbox_ids(cid)["api"] == ["r-2"]

    @pytest.mark.parametrize("door", DOORS)
    def test_a_holder_of_reassign_approval_replaces_all_assignees(self, door):
        admin_ = person("admin", "zart_approvals.reassign_approval")
        erin, zoe = person("erin", DECIDE), person("zoe")
        parked(plain, "r-3")
        assert reassign_through(door, admin_, "r-3", "zoe", reason="erin is busy").status in (
            201,
            302,
        )
        request = ApprovalRequest.objects.get(execution_id="r-3")
        assert request.assignees == ["user:zoe"]
        assert Reassignment.objects.get(execution_id="r-3").assignees_before == [f"perm:{DECIDE}"]
        assert decide_through(door, erin, "r-3").status == 403
        assert decide_through(door, zoe, "r-3").status in (201, 302)
        assert ApprovalRecord.objects.get(execution_id="r-3").delegated_by == "admin"

    @pytest.mark.parametrize("door", DOORS)
    def test_anyone_else_is_refused_and_nothing_changes(self, door):
        person("bob")
        erin, zoe = person("erin", DECIDE), person("zoe")
        parked(assigned, "r-4")
        before = snapshot("r-4")
        assert reassign_through(door, erin, "r-4", "zoe").status == 403
        assert reassign_through(door, zoe, "r-4", "zoe").status == 403
        assert snapshot("r-4") == before
        assert not Reassignment.objects.exists()

    @pytest.mark.parametrize(
        ("to", "reason", "field", "message"),
        [
            ("zoe", "   ", "reason", "a reason is required"),
            ("nobody", "why", "to", "no active user 'nobody'"),
            ("group:finance", "why", "to", "one user"),
            ("bob", "why", "to", "to yourself"),
            ("sam", "why", "to", "started this execution"),
        ],
    )
    def test_bad_reassignments_are_400_naming_the_input(self, to, reason, field, message):
        bob = person("bob")
        person("zoe")
        person("sam")
        parked(assigned, "r-5", started_by="sam")
        before = snapshot("r-5")
        answer = reassign_through("api", bob, "r-5", to, reason)
        assert answer.status == 400
        assert message in json.loads(answer.text)[field][0]
        with pytest.raises(ApprovalInvalid, match=message):
            reassign("r-5", bob, to, reason)
        assert snapshot("r-5") == before

    def test_a_reassignment_is_immutable(self):
        bob = person("bob")
        person("zoe")
        parked(assigned, "r-6")
        entry = reassign("r-6", bob, "zoe", "away")
        with pytest.raises(ValueError, match="a reassignment is immutable"):
            entry.save()
        with pytest.raises(ValueError, match="immutable"):
            Reassignment.objects.all().delete()

    def test_raw_sql_cannot_change_a_reassignment_on_postgresql(self):
        if connection.vendor != "postgresql":
            pytest.skip("the trigger exists on PostgreSQL only")
        person("zoe")
        parked(assigned, "r-7")
        reassign("r-7", person("bob"), "zoe", "away")
        table = Reassignment._meta.db_table
        for statement in (f"UPDATE {table} SET reason = 'x'", f"DELETE FROM {table}"):
            with pytest.raises(DatabaseError, match="a reassignment is immutable"):
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute(statement)
        assert Reassignment.objects.get().reason == "away"

    def test_the_schema_documents_the_endpoint_and_its_errors(self):
        client = APIClient()
        client.force_authenticate(person("reader"))
        schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
        operation = schema["paths"]["/api/approvals/{id}/reassign/"]["post"]
        assert {"201", "400", "403", "404", "409"} <= set(operation["responses"])


class TestDecisionData:
    @pytest.mark.parametrize("door", DOORS)
    def test_the_forms_fields_are_validated_stored_and_returned(self, door):
        alice = person("alice", DECIDE)
        parked(with_form, "f-1")
        request = ApprovalRequest.objects.get(execution_id="f-1")
        assert request.form == "tests.test_approval_rules.PaymentForm"
        page = logged_in(alice).get(reverse("zart_approvals:detail", args=["f-1"]))
        assert b'name="data-amount"' in page.content and b'name="data-pay_on"' in page.content
        admin_page = logged_in(alice).get(
            reverse("admin:zart_django_execution_change", args=["f-1"])
        )
        assert b'name="data-amount"' in admin_page.content
        before = snapshot("f-1")
        bad = decide_through(door, alice, "f-1", data={"amount": "lots", "pay_on": "2026-12-01"})
        assert bad.status in (400, 302) and "amount" in bad.text, bad.text
        assert snapshot("f-1") == before
        good = decide_through(door, alice, "f-1", data={"amount": "250", "pay_on": "2026-12-01"})
        assert good.status in (201, 302), good.text
        record = ApprovalRecord.objects.get(execution_id="f-1")
        assert record.data == {"amount": "250", "pay_on": "2026-12-01"}
        assert output("f-1") == {"approved": True, "data": record.data}

    def test_the_api_names_the_refused_field(self):
        alice = person("alice", DECIDE)
        parked(with_form, "f-2")
        answer = decide_through("api", alice, "f-2", data={"amount": 250})
        assert answer.status == 400
        assert json.loads(answer.text) == {"data": {"pay_on": ["This field is required."]}}

    def test_data_for_a_request_without_a_form_is_refused(self):
        alice = person("alice", DECIDE)
        parked(plain, "f-3")
        answer = decide_through("api", alice, "f-3", data={"amount": 1})
        assert answer.status == 400 and "asks for no decision data" in answer.text

    def test_a_form_that_no_longer_imports_is_a_clear_error_not_a_500(self):
        alice = person("alice", DECIDE)
        parked(with_form, "f-4")
        ApprovalRequest.objects.filter(execution_id="f-4").update(form="tests.gone.PaymentForm")
        answer = decide_through("api", alice, "f-4", data={"amount": 1})
        assert answer.status == 409 and "can no longer be imported" in answer.text
        with pytest.raises(ApprovalFormMissing, match="tests.gone.PaymentForm"):
            decide("f-4", alice, approved=True)
        page = logged_in(alice).get(reverse("zart_approvals:detail", args=["f-4"]))
        assert page.status_code == 200 and b"can no longer be imported" in page.content
        admin_page = logged_in(alice).get(
            reverse("admin:zart_django_execution_change", args=["f-4"])
        )
        assert admin_page.status_code == 200 and b"can no longer be imported" in admin_page.content
        inbox = decide_through("inbox", alice, "f-4")
        assert inbox.status == 302 and "can no longer be imported" in inbox.text

    def test_a_form_that_cannot_be_imported_fails_the_wait_with_a_clear_error(self):
        DurableScheduler().start_for(local_form, "f-5", Expense(1))
        run_until_idle()
        execution = Execution.objects.get(pk="f-5")
        assert execution.status == "failed"
        assert "importable by its dotted path" in execution.error
        assert not ApprovalRequest.objects.filter(execution_id="f-5").exists()

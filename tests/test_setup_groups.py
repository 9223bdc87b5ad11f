"""``manage.py zart_setup_groups``: the README's group recipe, run twice, and what a member of
each group may do through the API, the inbox and the admin (and what not)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from tests.approval_helpers import logged_in, make_user, start_parked
from tests.conftest import ROOT
from zart_django.approvals.models import ApprovalRecord
from zart_django.groups import GROUPS
from zart_django.models import Execution

pytestmark = pytest.mark.django_db

OPERATORS, APPROVERS = "zart operators", "zart approvers"


def setup_groups(*args: str) -> list[str]:
    out = StringIO()
    call_command("zart_setup_groups", *args, stdout=out)
    return out.getvalue().splitlines()


def held() -> dict[str, set[str]]:
    """Every group's permissions as ``app_label.codename``."""
    return {
        group.name: {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.all()}
        for group in Group.objects.all()
    }


def member(username: str, group: str, staff: bool = False) -> User:
    user = make_user(username, staff=staff)
    user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)


def api(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_dry_run_says_what_it_would_do_and_stores_nothing():
    lines = setup_groups("--dry-run")
    assert f"would create group {OPERATORS!r}" in lines
    assert f"{APPROVERS!r}: would add zart_approvals.decide_approval" in lines
    assert not Group.objects.exists()


def test_running_twice_gives_the_same_groups_and_says_nothing_changed():
    first = setup_groups()
    assert f"created group {OPERATORS!r}" in first
    assert f"{OPERATORS!r}: added zart_django.change_execution" in first
    after_first = held()
    assert after_first == {name: set(perms) for name, perms in GROUPS.items()}
    second = setup_groups()
    assert held() == after_first
    assert second == [
        f"{OPERATORS!r}: unchanged ({len(GROUPS[OPERATORS])} permissions held)",
        f"{APPROVERS!r}: unchanged (1 permissions held)",
    ]


def test_a_permission_taken_away_is_added_back_and_others_are_kept():
    setup_groups()
    approvers = Group.objects.get(name=APPROVERS)
    approvers.permissions.clear()
    operators = Group.objects.get(name=OPERATORS)
    extra = operators.permissions.model.objects.get(codename="delete_execution")
    operators.permissions.add(extra)
    assert setup_groups() == [
        f"{OPERATORS!r}: unchanged ({len(GROUPS[OPERATORS])} permissions held)",
        f"{APPROVERS!r}: added zart_approvals.decide_approval",
    ]
    assert "zart_django.delete_execution" in held()[OPERATORS]


def test_without_migrated_permissions_it_says_to_migrate():
    from django.contrib.auth.models import Permission

    Permission.objects.filter(codename="decide_approval").delete()
    with pytest.raises(CommandError, match="run manage.py migrate first"):
        setup_groups()
    assert not Group.objects.exists()


def test_an_operator_reads_cancels_and_offers_but_cannot_decide_or_start():
    setup_groups()
    operator = member("olga", OPERATORS, staff=True)
    start_parked("g-op-1")
    start_parked("g-op-2")
    client = api(operator)
    assert len(client.get("/api/executions/").json()["results"]) == 2
    assert client.get("/api/approvals/").json()["count"] == 0
    decided = client.post("/api/approvals/g-op-1/decide/", {"approved": True}, format="json")
    assert decided.status_code == 403
    body = {"task": "approval-task", "execution_id": "g-op-3", "input": {}}
    assert client.post("/api/executions/", body, format="json").status_code == 403
    assert client.post("/api/executions/g-op-1/events/nudge/", {"payload": 1}).status_code == 202
    assert client.post("/api/executions/g-op-2/cancel/").status_code == 200
    assert Execution.objects.get(pk="g-op-1").status == "waiting"  # not decided
    assert not Execution.objects.filter(pk="g-op-3").exists()
    browser = logged_in(operator)
    assert "g-op-1" not in browser.get("/approvals/").content.decode()  # not in the inbox
    page = browser.get("/approvals/requests/g-op-1/")  # may read it (view_execution) ...
    assert page.status_code == 200 and 'name="decision"' not in page.content.decode()
    forged = browser.post("/approvals/requests/g-op-1/decide/", {"decision": "approve"})
    assert forged.status_code == 403  # ... not decide it
    assert Execution.objects.get(pk="g-op-1").status == "waiting"
    assert not ApprovalRecord.objects.exists()
    assert browser.get("/admin/zart_django/execution/").status_code == 200
    assert browser.get("/admin/zart_django/execution/g-op-1/change/").status_code == 200


def test_an_approver_decides_in_the_inbox_and_the_api_and_reads_no_executions():
    setup_groups()
    approver = member("alma", APPROVERS)
    start_parked("g-ap-1")
    start_parked("g-ap-2")
    browser = logged_in(approver)
    assert "g-ap-1" in browser.get("/approvals/").content.decode()
    client = api(approver)
    assert client.get("/api/approvals/").json()["count"] == 2
    assert client.get("/api/executions/").status_code == 403
    assert client.post("/api/executions/g-ap-2/cancel/").status_code == 403
    assert client.post("/api/executions/g-ap-2/events/nudge/", {"payload": 1}).status_code == 403
    assert browser.get("/admin/zart_django/execution/").status_code == 302  # not staff: login
    assert Execution.objects.get(pk="g-ap-2").status == "waiting"
    inbox = browser.post("/approvals/requests/g-ap-1/decide/", {"decision": "approve"})
    assert inbox.status_code == 302 and inbox["Location"] == "/approvals/"
    decided = client.post("/api/approvals/g-ap-2/decide/", {"approved": False}, format="json")
    assert decided.status_code == 201
    assert decided.json()["reviewer"] == "alma"
    assert [r.approved for r in ApprovalRecord.objects.order_by("execution_id")] == [True, False]


def test_the_readme_lists_each_groups_permissions_as_the_command_sets_them():
    readme = (ROOT / "README.md").read_text()
    for name, permissions in GROUPS.items():
        bullet = readme.split(f"- **{name}**: ", 1)[1].split(":", 1)[0]
        listed = {codename.strip(" `") for codename in " ".join(bullet.split()).split(",")}
        assert listed == {permission.split(".")[1] for permission in permissions}, name

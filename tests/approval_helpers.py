"""Users and parked approval executions shared by the approval tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import Group, Permission, User
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from demo_project.approval.workflows import ApprovalRequest, Expense, approval_task, expense
from zart_django import DurableScheduler
from zart_django.approvals.models import ApprovalRecord
from zart_django.approvals.models import ApprovalRequest as RequestRow
from zart_django.models import Event, Execution, StepResult
from zart_django.testing import run_until_idle

PASSWORD = "pw-for-tests"
REQUEST = ApprovalRequest("Bob", "staging-environment", "Need to test the new deployment pipeline")


def make_user(username: str, *perms: str, staff: bool = False, full_name: str = "") -> User:
    """A user holding ``perms`` (``app_label.codename``), with password ``PASSWORD``."""
    first, _, last = full_name.partition(" ")
    user = User.objects.create_user(
        username, password=PASSWORD, is_staff=staff, first_name=first, last_name=last
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return User.objects.get(pk=user.pk)


def group_member(username: str, *perms: str, group: str = "") -> User:
    """A user holding ``perms`` only through a group (named ``group``, else after the user)."""
    held_by = Group.objects.create(name=group or f"{username}-group")
    for perm in perms:
        app_label, codename = perm.split(".")
        held_by.permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    user = make_user(username)
    user.groups.add(held_by)
    return User.objects.get(pk=user.pk)


def logged_in(user: User) -> Client:
    """A test client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def superuser_client() -> Client:
    """A test client logged in as a new superuser, ``root``."""
    root = make_user("root")
    root.is_superuser = root.is_staff = True
    root.save()
    return logged_in(root)


def start_parked(execution_id: str, request: ApprovalRequest = REQUEST) -> None:
    """Start the demo approval task and run it in-process until it waits for the manager."""
    DurableScheduler().start_for(approval_task, execution_id, request)
    run_until_idle()
    assert DurableScheduler().get(execution_id).waiting_on == "approval:manager-approval"


def park_many(prefix: str, count: int, request: ApprovalRequest = REQUEST) -> list[str]:
    """Start ``count`` demo approval executions and run them until each waits for the manager."""
    scheduler = DurableScheduler()
    ids = [f"{prefix}-{n}" for n in range(count)]
    for execution_id in ids:
        scheduler.start_for(approval_task, execution_id, request)
    run_until_idle()
    return ids


def park_expenses(prefix: str, count: int, manager: str, started_by: str = "") -> list[str]:
    """Start ``count`` demo expense claims naming ``manager`` (their other approvers: the group
    ``finance``) and run them until each waits for its approvers."""
    scheduler = DurableScheduler()
    ids = [f"{prefix}-{n}" for n in range(count)]
    for execution_id in ids:
        claim = Expense("Dave", "149.90", "Train to the fair", manager)
        scheduler.start_for(expense, execution_id, claim, started_by=started_by or None)
    run_until_idle()
    return ids


def snapshot(execution_id: str) -> tuple:
    """Everything an offer or a decision could change, to prove a refused one changed nothing."""
    return (
        Execution.objects.filter(pk=execution_id).values().get(),
        list(StepResult.objects.filter(execution_id=execution_id).values()),
        list(RequestRow.objects.filter(execution_id=execution_id).values()),
        list(ApprovalRecord.objects.filter(execution_id=execution_id).values()),
        list(Event.objects.filter(execution_id=execution_id).values()),
    )


DOORS = ("admin", "inbox", "api")
"""The three ways a person decides: the execution's admin page, the inbox, the REST API."""


@dataclass(frozen=True)
class Answer:
    """What a door answered: its HTTP status and the message it gave (the API's detail or
    field errors, the admin's and inbox's flash messages)."""

    status: int
    text: str


def through(door: str, user: User, execution_id: str, action: str, form: dict[str, Any]) -> Answer:
    """POST ``action`` ("decide" or "reassign") for ``execution_id`` as ``user`` through ``door``;
    ``form`` is the API's body (``data`` becomes ``data-<field>`` fields on the pages)."""
    if door == "api":
        client = APIClient()
        client.force_authenticate(user)
        response = client.post(f"/api/approvals/{execution_id}/{action}/", form, format="json")
        return Answer(response.status_code, json.dumps(response.json()))
    fields = {key: value for key, value in form.items() if key not in ("approved", "data")}
    if "approved" in form:
        fields["decision"] = "approve" if form["approved"] else "reject"
    fields.update({f"data-{key}": value for key, value in (form.get("data") or {}).items()})
    if door == "admin":
        url = reverse(f"admin:zart_django_execution_{action}", args=[execution_id])
    else:
        url = reverse(f"zart_approvals:{action}", args=[execution_id])
    response = logged_in(user).post(url, fields)
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    if response.status_code == 400:
        text += response.content.decode()
    return Answer(response.status_code, text)


def decide_through(
    door: str, user: User, execution_id: str, approved: bool = True, **body: Any
) -> Answer:
    """Approve (or reject) ``execution_id`` as ``user`` through ``door``."""
    return through(door, user, execution_id, "decide", {"approved": approved, **body})

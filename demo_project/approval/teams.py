"""Child executions in the demo: onboarding a team starts one child execution per member, each
creating an account, and parks until they have all ended. ``manage.py children_demo`` runs it
with a real worker; the demo's settings list this module in ``ZART["WORKFLOW_MODULES"]``."""

from __future__ import annotations

from dataclasses import dataclass

from zart_django import current_execution_id, durable, start_child, step, wait_for_child


@dataclass
class Team:
    name: str
    members: list[str]


@dataclass
class Account:
    username: str
    email: str


@step("reserve-username")
def reserve_username(member: str) -> str:
    return member.lower()


@step("send-welcome")
def send_welcome(username: str) -> str:
    # In a real system, this would send the welcome mail.
    return f"{username}@example.com"


@durable("create-account", timeout="10m")
def create_account(member: str) -> Account:
    username = reserve_username(member)
    return Account(username, send_welcome(username))


@durable("onboard-team")
def onboard_team(team: Team) -> list[Account]:
    """One child per member, started at once (they run side by side), then each waited for."""
    ids = [
        start_child(create_account, f"{current_execution_id()}-{member.lower()}", member)
        for member in team.members
    ]
    return [wait_for_child(child_id) for child_id in ids]

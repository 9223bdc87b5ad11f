"""``manage.py children_demo``: a team's onboarding starts a child execution per member and
waits for them, on a real worker; prints the accounts and the execution tree."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand

from demo_project.approval.teams import Team, onboard_team
from demo_project.approval.worker import running_worker
from zart_django import DurableScheduler


class Command(BaseCommand):
    help = "Onboard a team: one child execution per member, waited for by the parent."

    def handle(self, *args: Any, **options: Any) -> None:
        with running_worker("children-demo-worker.log") as log_path:
            self._flow()
        self.stdout.write(f"\n(worker log: {log_path})")

    def _flow(self) -> None:
        out = self.stdout.write
        scheduler = DurableScheduler()
        execution_id = f"onboarding-demo-{int(time.time() * 1000)}"
        team = Team("platform", ["Ana", "Ben", "Chen"])
        out("=== Zart Child Executions Example ===")
        out("")
        out(f"Starting execution '{execution_id}' (team {team.name}: {', '.join(team.members)})")
        scheduler.start_for(onboard_team, execution_id, team)
        accounts = scheduler.wait_completion(execution_id, timeout=60)
        out("")
        out("Execution completed! Accounts:")
        for account in accounts:
            out(f"  {account.username:<6} {account.email}")
        out("")
        out("Execution tree:")
        self._tree(scheduler, execution_id, "  ")

    def _tree(self, scheduler: DurableScheduler, execution_id: str, indent: str) -> None:
        info = scheduler.get(execution_id)
        steps = ", ".join(s.name for s in info.steps)
        self.stdout.write(f"{indent}{info.id} ({info.task}, {info.status}): {steps}")
        for child in info.children:
            self._tree(scheduler, child, indent + "  ")

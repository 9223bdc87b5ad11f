"""``manage.py approval_demo``: the reference page's approval flow, end to end, with a real worker."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from demo_project.approval.users import MANAGER_PASSWORD, MANAGER_USERNAME, ensure_manager
from demo_project.approval.worker import running_worker
from demo_project.approval.workflows import (
    ApprovalDecision,
    ApprovalRequest,
    access_request,
    approval_task,
)
from zart_django import DurableScheduler
from zart_django.approvals import decide


class Command(BaseCommand):
    help = "Start an approval execution, park it, approve it as a manager, and print the outcome."

    def handle(self, *args: Any, **options: Any) -> None:
        with running_worker("demo-worker.log") as log_path:
            self._flow()
            self._leave_requests_for_the_inbox()
        self.stdout.write(f"\n(worker log: {log_path})")
        python = os.path.relpath(sys.executable, settings.BASE_DIR)
        self.stdout.write(
            "\nTry the inbox in a browser:\n"
            f"  {python} manage.py run_zart_worker &   # resumes executions once decided\n"
            f"  {python} manage.py runserver\n"
            "  open http://127.0.0.1:8000/approvals/ (admin: /admin/, API: /api/docs/)\n"
            f"  log in as {MANAGER_USERNAME} / {MANAGER_PASSWORD}"
        )

    def _flow(self) -> None:
        out = self.stdout.write
        scheduler = DurableScheduler()
        execution_id = f"approval-demo-{int(time.time() * 1000)}"
        request = ApprovalRequest(
            requester_name="Bob",
            resource="staging-environment",
            reason="Need to test the new deployment pipeline",
        )
        out("=== Zart Approval Workflow Example ===")
        out("")
        out(f"Starting execution '{execution_id}'...")
        out(f"  Requester: {request.requester_name}")
        out(f"  Resource:  {request.resource}")
        out(f"  Reason:    {request.reason}")
        out("")
        scheduler.start_for(approval_task, execution_id, request)
        self._wait_until_parked(scheduler, execution_id)
        out("Execution is waiting for manager approval...")
        out("(Simulating manager delivering the event after 2 seconds)")
        out("")
        time.sleep(2)
        manager = ensure_manager()
        record = decide(
            execution_id, manager, approved=True, comment="Approved for testing purposes"
        )
        decision = ApprovalDecision(
            record.approved, record.reviewer_name, record.comment, record.decided_at.isoformat()
        )
        out(f"Manager decision: {decision}")
        out("")
        output = scheduler.wait_completion(execution_id, timeout=60)
        out("Execution completed!")
        out(f"  Decision:  {output.decision}")
        out(f"  Requester: {output.requester}")
        out(f"  Resource:  {output.resource}")
        out(f"  Reviewer:  {output.reviewer}")
        out(f"  Comment:   {output.comment}")
        steps = scheduler.get(execution_id).steps
        out("\nRecorded steps: " + ", ".join(f"{s.name} ({s.status})" for s in steps))

    def _leave_requests_for_the_inbox(self) -> None:
        """Two access requests parked for a week, for a person to decide in the inbox."""
        scheduler = DurableScheduler()
        stamp = int(time.time() * 1000)
        requests = [
            ApprovalRequest("Carol", "production-db (read only)", "Investigate a billing report"),
            ApprovalRequest("Dan", "a second monitor", "Reviewing designs side by side"),
        ]
        self.stdout.write("")
        for n, request in enumerate(requests, 1):
            execution_id = f"access-demo-{stamp}-{n}"
            scheduler.start_for(access_request, execution_id, request)
            self._wait_until_parked(scheduler, execution_id)
            self.stdout.write(f"Waiting in the inbox: {execution_id} ({request.requester_name})")

    def _wait_until_parked(self, scheduler: DurableScheduler, execution_id: str) -> None:
        limit = time.monotonic() + 30
        while time.monotonic() < limit:
            info = scheduler.get(execution_id)
            if info.status == "waiting" and info.waiting_on == "approval:manager-approval":
                return
            if info.is_finished:
                raise CommandError(f"execution ended early: {info.status} {info.error}")
            time.sleep(0.05)
        raise CommandError("the worker did not reach the approval wait within 30 s")

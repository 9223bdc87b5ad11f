"""The approvals section of ``manage.py zart show``: each request of the execution and its
decision (registered by ``ApprovalsConfig.ready``)."""

from __future__ import annotations

from typing import Any

from zart_django.management.cli import ShowSection, table, when

from .models import ApprovalRequest
from .services import requests_of


def approval_rows(execution_id: str) -> list[dict[str, Any]]:
    """Every approval request of the execution, oldest first, with its decision."""
    return [_approval(request) for request in requests_of(execution_id)]


def _approval(request: ApprovalRequest) -> dict[str, Any]:
    record = request.record
    decision = None
    if record is not None:
        decision = {
            "approved": record.approved,
            "reviewer": record.reviewer,
            "reviewer_name": record.reviewer_name,
            "comment": record.comment,
            "source": record.source,
            "decided_at": record.decided_at,
        }
    return {
        "event": request.event,
        "title": request.title,
        "outcome": request.outcome,
        "permission": request.permission,
        "created_at": request.created_at,
        "closed_at": request.closed_at,
        "decision": decision,
    }


def approvals_table(approvals: list[dict[str, Any]]) -> str:
    rows = [
        (a["event"], a["title"], a["outcome"], *_decided(a["decision"]), a["created_at"])
        for a in approvals
    ]
    headers = ("APPROVAL", "TITLE", "OUTCOME", "DECIDED BY", "COMMENT", "ASKED")
    return table(headers, rows)


def _decided(decision: dict | None) -> tuple[str, str]:
    if decision is None:
        return "", ""
    who = f"{decision['reviewer']} ({decision['source']}, {when(decision['decided_at'])})"
    return who, decision["comment"]


SECTION = ShowSection("Approvals", approval_rows, approvals_table)

"""The approval workflow of the reference page: validate, wait for a manager, then provision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from zart_django import durable, step
from zart_django.approvals import ApprovalDecision, wait_for_approval

__all__ = [
    "ApprovalRequest",
    "ApprovalDecision",
    "ApprovalOutput",
    "ApprovalRequest",
    "access_request",
    "approval_task",
]


@dataclass
class ApprovalRequest:
    requester_name: str
    resource: str
    reason: str


@dataclass
class ApprovalOutput:
    decision: str  # "approved" | "rejected"
    requester: str
    resource: str
    reviewer: str
    comment: str


@step("validate-request")
def validate_request(request: ApprovalRequest) -> str:
    if not request.requester_name:
        raise ValueError("requester name is required")
    return f"Validated request from {request.requester_name} for {request.resource}"


@step("process-approved")
def process_approved(resource: str, requester: str) -> str:
    # In a real system, this would provision the resource.
    return f"Provisioned {resource} for {requester}"


@durable("approval-task", timeout="5m")
def approval_task(data: ApprovalRequest) -> ApprovalOutput:
    validate_request(data)
    decision = wait_for_approval(
        "manager-approval",
        timeout=timedelta(seconds=120),
        title=f"{data.requester_name} requests {data.resource}",
        summary=data.reason,
    )
    if decision.approved:
        process_approved(data.resource, data.requester_name)
    return outcome(data, decision)


def outcome(data: ApprovalRequest, decision: ApprovalDecision) -> ApprovalOutput:
    """What a request's workflow returns once a manager decided."""
    return ApprovalOutput(
        decision="approved" if decision.approved else "rejected",
        requester=data.requester_name,
        resource=data.resource,
        reviewer=decision.reviewer,
        comment=decision.comment,
    )


@step("grant-access")
def grant_access(resource: str, requester: str) -> str:
    # In a real system, this would grant the access.
    return f"Granted {resource} to {requester}"


@durable("access-request")
def access_request(data: ApprovalRequest) -> ApprovalOutput:
    """Like ``approval-task`` but waits a week: the requests a person decides in the inbox."""
    decision = wait_for_approval(
        timeout=timedelta(days=7),
        title=f"{data.requester_name} asks for {data.resource}",
        summary=data.reason,
    )
    if decision.approved:
        grant_access(data.resource, data.requester_name)
    return outcome(data, decision)

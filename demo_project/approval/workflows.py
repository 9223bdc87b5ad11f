"""The approval workflow of the reference page: validate, wait for a manager, then provision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from zart_django import durable, step, wait_for_event


@dataclass
class ApprovalRequest:
    requester_name: str
    resource: str
    reason: str


@dataclass
class ApprovalDecision:
    approved: bool
    reviewer: str
    comment: str


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
    decision = wait_for_event(
        "manager-approval", timeout=timedelta(seconds=120), type=ApprovalDecision
    )
    if decision.approved:
        process_approved(data.resource, data.requester_name)
    return ApprovalOutput(
        decision="approved" if decision.approved else "rejected",
        requester=data.requester_name,
        resource=data.resource,
        reviewer=decision.reviewer,
        comment=decision.comment,
    )

"""The approval workflow of the reference page: validate, wait for a manager, then provision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import forms

from zart_django import durable, step
from zart_django.approvals import ApprovalDecision, wait_for_approval

__all__ = [
    "ApprovalRequest",
    "ApprovalDecision",
    "ApprovalOutput",
    "ApprovalRequest",
    "Expense",
    "ExpenseApproval",
    "ExpenseOutput",
    "access_request",
    "approval_task",
    "expense",
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


@dataclass
class Expense:
    employee: str
    amount: str  # what the employee claims, e.g. "149.90"
    purpose: str
    manager: str  # the employee's manager's username: one of the approvers


@dataclass
class ExpenseOutput:
    decision: str  # "approved" | "rejected"
    employee: str
    approved_amount: str
    approvers: list[str]


class ExpenseApproval(forms.Form):
    """What an approver fills in beside Approve/Reject."""

    approved_amount = forms.DecimalField(max_digits=10, decimal_places=2, min_value=0)


@step("pay-expense")
def pay_expense(employee: str, amount: str) -> str:
    # In a real system, this would hand the payment to accounting.
    return f"Paid {amount} to {employee}"


@durable("expense")
def expense(claim: Expense) -> ExpenseOutput:
    """Two of the employee's manager and the finance group approve an expense and say how much."""
    decision = wait_for_approval(
        "expense-approval",
        timeout="14d",
        title=f"{claim.employee}: {claim.amount} for {claim.purpose}",
        summary=f"{claim.employee} claims {claim.amount}. Approve the amount you accept.",
        assignees=lambda c: [c.manager, "group:finance"],  # resolved from the input
        required=2,  # two distinct approvers; the first rejection rejects
        form=ExpenseApproval,  # each approver enters the amount they approve
        remind_every="1d",  # mail the approvers every day it stays open
        escalate_after="3d",  # then let the CFO decide too
        escalate_to=["cfo"],
    )
    amount = _lowest_amount(decision.votes) if decision.approved else "0"
    if decision.approved:
        pay_expense(claim.employee, amount)
    return ExpenseOutput(
        decision="approved" if decision.approved else "rejected",
        employee=claim.employee,
        approved_amount=amount,
        approvers=[vote["reviewer"] for vote in decision.votes],
    )


def _lowest_amount(votes: list[dict[str, Any]]) -> str:
    """The smallest amount the approvers approved: each vote's ``data``, as the form cleaned it."""
    amounts = [vote["data"]["approved_amount"] for vote in votes if vote["approved"]]
    return min(amounts, key=Decimal)

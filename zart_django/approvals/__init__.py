"""Approvals: durable functions that wait for a person, and the one way people decide.

```python
from zart_django.approvals import ApprovalDecision, wait_for_approval, decide

@durable("expense")
def expense(claim: Claim) -> str:
    decision = wait_for_approval(timeout="3d", title=f"{claim.who}: {claim.amount} EUR")
    return "paid" if decision.approved else f"refused: {decision.comment}"

decide("expense-42", request.user, approved=True, comment="ok", source="inbox")
```
The admin, the inbox (``zart_django.approvals.urls``) and the REST API (``zart_django.api.urls``) all decide
through ``decide``. Names are imported lazily, so importing this package never touches the models
before Django is set up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zart_django.lazy import exporter

_EXPORTS = {
    "ApprovalDecision": "decision",
    "wait_for_approval": "waiting",
    "decide": "services",
    "can_decide": "services",
    "decidable_by": "services",
    "find_request": "services",
    "reassign": "services",
    "ApprovalError": "errors",
    "ApprovalInvalid": "errors",
    "ApprovalFormMissing": "errors",
    "ApprovalNotFound": "errors",
    "ApprovalPermissionDenied": "errors",
    "ApprovalAlreadyDecided": "errors",
    "ApprovalClosed": "errors",
}

__all__ = [
    "ApprovalAlreadyDecided",
    "ApprovalClosed",
    "ApprovalDecision",
    "ApprovalError",
    "ApprovalFormMissing",
    "ApprovalInvalid",
    "ApprovalNotFound",
    "ApprovalPermissionDenied",
    "can_decide",
    "decidable_by",
    "decide",
    "find_request",
    "reassign",
    "wait_for_approval",
]


__getattr__ = exporter(__name__, _EXPORTS)


if TYPE_CHECKING:
    from .decision import ApprovalDecision
    from .errors import (
        ApprovalAlreadyDecided,
        ApprovalClosed,
        ApprovalError,
        ApprovalFormMissing,
        ApprovalInvalid,
        ApprovalNotFound,
        ApprovalPermissionDenied,
    )
    from .services import can_decide, decidable_by, decide, find_request, reassign
    from .waiting import wait_for_approval

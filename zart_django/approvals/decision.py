"""The value a durable function receives when a person approves or rejects it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApprovalDecision:
    """A person's decision, as ``wait_for_approval`` returns it.

    ``reviewer`` is the deciding user's display name (full name, else username), taken from the
    logged-in user, never from a form; ``decided_at`` is an ISO 8601 UTC time. Plain JSON fields,
    so the decision is stored and replayed like any event payload.
    """

    approved: bool
    reviewer: str
    comment: str
    decided_at: str = ""

"""The value a durable function receives when people approve or reject it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ApprovalDecision:
    """The decision, as ``wait_for_approval`` returns it.

    ``reviewer`` is the display name (full name, else username) of whoever cast the deciding
    vote, taken from the logged-in user, never from a form; ``decided_at`` is an ISO 8601 UTC
    time. ``votes`` lists every vote, oldest first, as ``{"reviewer", "approved", "comment",
    "decided_at", "data", "delegated_by"}`` (one, unless the wait asked for ``required``
    approvals); ``data`` is the deciding vote's decision form values (``None`` without a form),
    as JSON (dates and decimals as strings). Plain JSON fields, so the decision is stored and
    replayed like any event payload; decisions stored before ``votes`` and ``data`` existed
    replay with their defaults.
    """

    approved: bool
    reviewer: str
    comment: str
    decided_at: str = ""
    votes: list[dict[str, Any]] = field(default_factory=list)
    data: Any = None

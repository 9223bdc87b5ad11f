"""``decide``: the one way a person's decision reaches an execution, from the admin, inbox or API."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError

from zart_django import DurableScheduler, store
from zart_django.clock import now

from .decision import ApprovalDecision
from .errors import (
    ApprovalAlreadyDecided,
    ApprovalClosed,
    ApprovalNotFound,
    ApprovalPermissionDenied,
)
from .models import ApprovalRecord, ApprovalRequest, RequestStatus, Source


def can_decide(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` holds the permission ``request`` asks for (active users only)."""
    return bool(user.is_authenticated and user.is_active and user.has_perm(request.permission))


def decidable_by(user: Any) -> list[ApprovalRequest]:
    """The open requests ``user`` may decide, newest first: the user's inbox."""
    requests = ApprovalRequest.objects.open().select_related("execution")
    return [r for r in requests if can_decide(user, r)]


def reviewer_name(user: Any) -> str:
    """How a decision names its reviewer: the user's full name, else the username."""
    full_name = user.get_full_name() if hasattr(user, "get_full_name") else ""
    return full_name or user.get_username()


def find_request(execution_id: str, event: str | None = None) -> ApprovalRequest:
    """The execution's request for ``event``, or its latest one; ``ApprovalNotFound`` if none."""
    requests = ApprovalRequest.objects.filter(execution_id=execution_id).select_related("execution")
    if event is not None:
        requests = requests.filter(event=event)
    request = requests.order_by("-created_at", "-pk").first()
    if request is None:
        raise ApprovalNotFound(execution_id, event)
    return request


def decide(
    execution_id: str,
    user: Any,
    approved: bool,
    comment: str = "",
    source: str = Source.CODE,
    event: str | None = None,
) -> ApprovalRecord:
    """Approve or reject the execution's open request as ``user``, and resume the execution.

    Checks, in one transaction: the request exists (``ApprovalNotFound``), ``user`` holds its
    permission (``ApprovalPermissionDenied``), it is not decided yet (``ApprovalAlreadyDecided``)
    and can still be decided (``ApprovalClosed``). Then writes the audit record (reviewer = the
    user's username) and offers the ``ApprovalDecision`` with ``DurableScheduler.offer_event``.
    Any error leaves nothing stored. Returns the record.
    """
    try:
        with store.atomic():  # on SQLite: IMMEDIATE, so it never meets "database is locked"
            return _decide(execution_id, user, approved, comment, source, event)
    except IntegrityError:
        raise ApprovalAlreadyDecided(
            f"execution {execution_id!r} was decided by someone else a moment ago"
        ) from None


def _decide(
    execution_id: str,
    user: Any,
    approved: bool,
    comment: str,
    source: str,
    event: str | None,
) -> ApprovalRecord:
    found = find_request(execution_id, event)
    request = (
        ApprovalRequest.objects.select_for_update().select_related("execution").get(pk=found.pk)
    )
    if not can_decide(user, request):
        raise ApprovalPermissionDenied(execution_id, request.permission)
    previous = request.record
    if previous is not None:
        verdict = "approved" if previous.approved else "rejected"
        raise ApprovalAlreadyDecided(
            f"execution {execution_id!r} was already {verdict} by {previous.reviewer}"
            f" at {previous.decided_at:%Y-%m-%d %H:%M:%S} UTC"
        )
    if not request.is_open:
        raise ApprovalClosed(
            f"execution {execution_id!r} can no longer be decided: {request.outcome}"
        )
    decided_at = now()
    record = ApprovalRecord.objects.create(
        execution_id=execution_id,
        task_name=request.execution.task_name,
        event=request.event,
        approved=bool(approved),
        reviewer=user.get_username(),
        reviewer_name=reviewer_name(user),
        comment=comment,
        source=source,
        decided_at=decided_at,
    )
    ApprovalRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.DECIDED, closed_at=decided_at
    )
    DurableScheduler().offer_event(
        execution_id,
        request.event,
        ApprovalDecision(
            approved=bool(approved),
            reviewer=record.reviewer_name,
            comment=comment,
            decided_at=decided_at.isoformat(),
        ),
    )
    return record

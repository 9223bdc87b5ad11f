"""``decide``: the one way a person's decision reaches an execution, from the admin, inbox or API."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django.db import IntegrityError
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from zart_django import store
from zart_django.clock import now
from zart_django.errors import EventExpired, ExecutionFinished
from zart_django.scheduler import DurableScheduler, deliver_reserved
from zart_django.signals import send

from .decision import ApprovalDecision
from .errors import (
    ApprovalAlreadyDecided,
    ApprovalClosed,
    ApprovalNotFound,
    ApprovalPermissionDenied,
)
from .models import (
    ApprovalRecord,
    ApprovalRequest,
    ApprovalRequestQuerySet,
    RequestStatus,
    Source,
)
from .signals import approval_decided
from .waiting import decision_event

logger = logging.getLogger("zart_django")

VIEW_PERMISSION = "zart_django.view_execution"


WORKER_SEEN_WITHIN = timedelta(minutes=2)
"""A worker seen this recently is taken to be running (they record it about every 30 s)."""


def resume_note() -> str:
    """What a person who just decided is told of the execution going on: a worker will resume it
    shortly if one was seen within ``WORKER_SEEN_WITHIN``, else how long none has been seen."""
    seen_ago = DurableScheduler().worker_seen_ago()
    if seen_ago is not None and seen_ago <= WORKER_SEEN_WITHIN:
        return _("A worker will resume it shortly.")
    if seen_ago is None:
        return _("No worker has been seen yet: it resumes when one runs.")
    return _("No worker has been seen for %(time)s: it resumes when one runs.") % {
        "time": timesince(now() - seen_ago, now())
    }


def can_decide(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` holds the permission ``request`` asks for (active users only), asked of
    the project's authentication backends with ``has_perm``: the authority for one request."""
    return bool(user.is_authenticated and user.is_active and user.has_perm(request.permission))


def decidable_by(user: Any) -> ApprovalRequestQuerySet:
    """The open requests ``user`` may decide, newest first: the user's inbox, as a query.

    The database selects them from ``ModelBackend``'s tables (direct, group and superuser
    permissions; see ``ApprovalRequestQuerySet.permitted_to``), so a page of it costs the same
    few queries however many requests are open. ``decide`` still checks ``can_decide``.
    """
    return (
        ApprovalRequest.objects.open()
        .permitted_to(user)
        .with_decisions()
        .order_by("-created_at", "-pk")
    )


def visible_to(user: Any) -> ApprovalRequestQuerySet:
    """The requests ``user`` may read: all of them with ``zart_django.view_execution``, else
    those whose permission the user holds (see ``may_see`` for one request)."""
    requests = ApprovalRequest.objects.all()
    if not user.has_perm(VIEW_PERMISSION):
        requests = requests.permitted_to(user)
    return requests.with_decisions().order_by("-created_at", "-pk")


def may_see(user: Any, request: ApprovalRequest) -> bool:
    """Who may read a request: those who may decide it, and those who may view executions."""
    return can_decide(user, request) or user.has_perm(VIEW_PERMISSION)


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


def requests_of(execution_id: str) -> list[ApprovalRequest]:
    """Every approval request of the execution with its decision loaded, oldest first."""
    return list(
        ApprovalRequest.objects.filter(execution_id=execution_id)
        .with_decisions()
        .order_by("created_at", "pk")
    )


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
    and can still be decided (``ApprovalClosed``, also when its deadline passed: the
    decision and the expiry are serialized). Then writes the audit record (reviewer = the user's
    username) and delivers the ``ApprovalDecision`` to the wait's reserved event name, the only
    path that can complete an approval wait. Any error leaves nothing stored. Returns the record.
    """
    try:
        return store.transaction(
            lambda: _decide(execution_id, user, approved, comment, source, event)
        )
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
    if request.deadline is not None and decided_at >= request.deadline:
        # Checked here, not only by the engine: a wait between reminders has no deadline.
        raise ApprovalClosed(f"execution {execution_id!r} can no longer be decided: expired")
    record = ApprovalRecord.objects.create(
        execution_id=execution_id,
        request=request,
        run=request.run,
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
    try:
        deliver_reserved(
            execution_id,
            decision_event(request.event),
            ApprovalDecision(
                approved=bool(approved),
                reviewer=record.reviewer_name,
                comment=comment,
                decided_at=decided_at.isoformat(),
            ),
        )
    except (EventExpired, ExecutionFinished) as exc:
        raise ApprovalClosed(f"execution {execution_id!r} can no longer be decided: {exc}") from exc
    verdict = "approved" if record.approved else "rejected"
    logger.info(
        "execution %s: approval %s %s by %s", execution_id, record.event, verdict, record.reviewer
    )
    send(
        approval_decided,
        execution_id=execution_id,
        task_name=record.task_name,
        event=record.event,
        approved=record.approved,
        reviewer=record.reviewer,
        comment=comment,
        source=source,
    )
    return record

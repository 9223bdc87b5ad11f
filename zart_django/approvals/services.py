"""``decide``: the one way a person's decision reaches an execution, from the admin, inbox or API."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib.auth import get_user_model
from django.db import IntegrityError
from django.utils.module_loading import import_string
from django.utils.timesince import timesince
from django.utils.translation import gettext as _

from zart_django import store
from zart_django.clock import now
from zart_django.codec import check_text, encode
from zart_django.errors import EventExpired, ExecutionFinished
from zart_django.scheduler import DurableScheduler, deliver_reserved
from zart_django.signals import send

from .assignees import EXCLUDED, assign, effective, is_assignee, normalize
from .decision import ApprovalDecision
from .errors import (
    ApprovalAlreadyDecided,
    ApprovalClosed,
    ApprovalFormMissing,
    ApprovalInvalid,
    ApprovalNotFound,
    ApprovalPermissionDenied,
)
from .models import (
    REASSIGN_PERMISSION,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalRequestQuerySet,
    Reassignment,
    RequestStatus,
    Source,
)
from .signals import approval_decided, approval_reassigned, approval_voted
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


def refusal(user: Any, request: ApprovalRequest) -> str | None:
    """Why ``user`` may not decide ``request``, or None if they may: they must be an active
    assignee (``assignees.is_assignee``; without assignees, hold the request's permission) and
    not the person who started the execution, unless the wait allows it."""
    if not is_assignee(user, request):
        if not request.assignees:
            return _no_permission(request)
        return f"execution {request.execution_id!r} is not assigned to you"
    if requested_by(user, request):
        return (
            f"you started execution {request.execution_id!r}, so someone else has to decide it"
            " (segregation of duties)"
        )
    return None


def requested_by(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` started the request's execution and the request does not allow them."""
    started_by = request.execution.started_by
    return bool(
        started_by
        and user.is_authenticated
        and started_by == user.get_username()
        and not request.allow_requester
    )


def _no_permission(request: ApprovalRequest) -> str:
    return (
        f"you need the permission {request.permission!r}"
        f" to decide execution {request.execution_id!r}"
    )


def can_decide(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` may decide ``request`` (see ``refusal``), asked of the project's
    authentication backends with ``has_perm``: the authority for one request."""
    return refusal(user, request) is None


def can_vote(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` may decide ``request`` now: it is open, they may, and have not voted."""
    return (
        request.is_open
        and can_decide(user, request)
        and all(vote.reviewer != user.get_username() for vote in request.votes)
    )


def may_reassign(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` may reassign ``request`` (see ``reassign``), if it is open."""
    if not request.is_open or requested_by(user, request):
        return False
    return can_decide(user, request) or (
        user.is_active and _holds_reassign_permission(user, request)
    )


def _holds_reassign_permission(user: Any, request: ApprovalRequest) -> bool:
    return bool(user.has_perm(REASSIGN_PERMISSION) or user.has_perm(REASSIGN_PERMISSION, request))


def decidable_by(user: Any) -> ApprovalRequestQuerySet:
    """The open requests ``user`` may decide, newest first: the user's inbox, as a query.

    The database selects them from ``ModelBackend``'s tables (assignees by user, group and
    permission; direct, group and superuser permissions; see ``ApprovalRequestQuerySet.
    permitted_to``), leaving out those the user started or voted on, so a page of it costs the
    same few queries however many requests are open. ``decide`` still checks ``can_decide``.
    """
    return (
        ApprovalRequest.objects.open()
        .decidable_by(user)
        .with_decisions()
        .order_by("-created_at", "-pk")
    )


def visible_to(user: Any) -> ApprovalRequestQuerySet:
    """The requests ``user`` may read: all of them with ``zart_django.view_execution``, else
    those the user is an assignee of or started (see ``may_see`` for one request)."""
    requests = ApprovalRequest.objects.all()
    if not user.has_perm(VIEW_PERMISSION):
        requests = requests.permitted_to(user) | requests.started_by(user)
    return requests.with_decisions().order_by("-created_at", "-pk")


def may_see(user: Any, request: ApprovalRequest) -> bool:
    """Who may read a request: its assignees (its requester too, who may not decide it), and
    those who may view executions."""
    started = user.is_authenticated and request.execution.started_by == user.get_username()
    return is_assignee(user, request) or started or user.has_perm(VIEW_PERMISSION)


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
    data: dict[str, Any] | None = None,
) -> ApprovalRecord:
    """Approve or reject the execution's open request as ``user``, and resume the execution
    once the vote decides it.

    Checks, in one transaction: the request exists (``ApprovalNotFound``), ``user`` may decide it
    (``ApprovalPermissionDenied``: an assignee, not its requester), it is not decided yet and
    ``user`` has not voted on it (``ApprovalAlreadyDecided``), it can still be decided
    (``ApprovalClosed``, also when its wait's deadline passed: the decision and the expiry are
    serialized) and ``data`` is valid for its decision form (``ApprovalInvalid``,
    ``ApprovalFormMissing``). Then writes the audit record of the vote (reviewer = the user's
    username). A rejection, or the approval that reaches the request's ``required`` count,
    decides it: the ``ApprovalDecision`` with every vote is delivered to the wait's reserved
    event name, the only path that can complete an approval wait. Any error leaves nothing
    stored. Returns the record.
    """
    try:
        return store.transaction(
            lambda: _decide(execution_id, user, approved, comment, source, event, data)
        )
    except IntegrityError:
        raise ApprovalAlreadyDecided(
            f"execution {execution_id!r} was decided by someone else a moment ago"
        ) from None


def _locked(execution_id: str, event: str | None) -> ApprovalRequest:
    """The execution's request, locked until the transaction ends (decisions and
    reassignments of one request are serialized)."""
    found = find_request(execution_id, event)
    return ApprovalRequest.objects.select_for_update().select_related("execution").get(pk=found.pk)


def _decide(
    execution_id: str,
    user: Any,
    approved: bool,
    comment: str,
    source: str,
    event: str | None,
    data: dict[str, Any] | None,
) -> ApprovalRecord:
    request = _locked(execution_id, event)
    refused = refusal(user, request)
    if refused is not None:
        raise ApprovalPermissionDenied(execution_id, request.permission, refused)
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
    votes = request.votes
    username = user.get_username()
    if any(vote.reviewer == username for vote in votes):
        raise ApprovalAlreadyDecided(
            f"you voted on execution {execution_id!r} already ({request.progress})"
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
        reviewer=username,
        reviewer_name=reviewer_name(user),
        comment=comment,
        source=source,
        decided_at=decided_at,
        delegated_by=_delegated_by(request, username),
        data=_cleaned(request, data),
    )
    votes.append(record)
    approvals = sum(vote.approved for vote in votes)
    if record.approved and approvals < request.required:
        progress = f"{approvals} of {request.required} approvals"
        logger.info(
            "execution %s: approval %s voted by %s (%s)",
            execution_id,
            record.event,
            record.reviewer,
            progress,
        )
        send(
            approval_voted,
            execution_id=execution_id,
            task_name=record.task_name,
            event=record.event,
            approved=True,
            reviewer=record.reviewer,
            progress=progress,
        )
        return record
    _deliver(request, record, votes)
    return record


def _deliver(request: ApprovalRequest, record: ApprovalRecord, votes: list[ApprovalRecord]) -> None:
    """Close the request with ``record``, its deciding vote, and resume the execution."""
    execution_id = request.execution_id
    ApprovalRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.DECIDED, closed_at=record.decided_at
    )
    try:
        deliver_reserved(
            execution_id,
            decision_event(request.event),
            ApprovalDecision(
                approved=record.approved,
                reviewer=record.reviewer_name,
                comment=record.comment,
                decided_at=record.decided_at.isoformat(),
                votes=[_vote(vote) for vote in votes],
                data=record.data,
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
        comment=record.comment,
        source=record.source,
    )


def _vote(record: ApprovalRecord) -> dict[str, Any]:
    return {
        "reviewer": record.reviewer,
        "approved": record.approved,
        "comment": record.comment,
        "decided_at": record.decided_at.isoformat(),
        "data": record.data,
        "delegated_by": record.delegated_by,
    }


def _delegated_by(request: ApprovalRequest, username: str) -> str:
    """Who last reassigned ``request`` to ``username``, if anyone did."""
    handed = Reassignment.objects.filter(request=request, to=f"user:{username}")
    latest = handed.order_by("-reassigned_at", "-pk").first()
    return latest.reassigned_by if latest else ""


def data_form(request: ApprovalRequest) -> type[forms.Form] | None:
    """The request's decision form class, or None if it has none. ``ApprovalFormMissing`` when
    its dotted path no longer imports a form (a deploy removed or renamed it)."""
    if not request.form:
        return None
    try:
        form_class = import_string(request.form)
    except ImportError as exc:
        raise ApprovalFormMissing(
            f"execution {request.execution_id!r} cannot be decided: its decision form"
            f" {request.form!r} can no longer be imported ({exc}); deploy it again"
        ) from None
    if not (isinstance(form_class, type) and issubclass(form_class, forms.BaseForm)):
        raise ApprovalFormMissing(
            f"execution {request.execution_id!r} cannot be decided: {request.form!r} is no"
            " longer a Django form class"
        )
    return form_class


def _cleaned(request: ApprovalRequest, data: dict[str, Any] | None) -> Any:
    """``data`` validated by the request's decision form, as JSON (``zart_django.codec``), or
    None without a form. ``ApprovalInvalid`` names each field the form refuses."""
    form_class = data_form(request)
    if form_class is None:
        if data:
            raise ApprovalInvalid(
                f"execution {request.execution_id!r} asks for no decision data:"
                f" leave out {', '.join(sorted(data))}",
                field="data",
            )
        return None
    if data is not None and not isinstance(data, dict):
        raise ApprovalInvalid("decision data is an object of the form's fields", field="data")
    form = form_class(data=data or {})
    if not form.is_valid():
        details = {name: [str(m) for m in messages] for name, messages in form.errors.items()}
        problems = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in details.items())
        raise ApprovalInvalid(
            f"the decision data is not valid: {problems}", field="data", details=details
        )
    return encode(form.cleaned_data, "data")


def reassign(
    execution_id: str, user: Any, to: Any, reason: str, event: str | None = None
) -> Reassignment:
    """Hand the execution's open request to ``to`` (a user or username) as ``user``, and say why.

    An assignee hands over their own assignment: ``to`` replaces them (they leave the request's
    assignees, whichever spec made them one). A user holding ``zart_approvals.reassign_approval``
    who is no assignee replaces all the request's assignees with ``to``. Refused
    (``ApprovalPermissionDenied``) for anyone else and for the execution's requester (who may
    not choose who decides it), and (``ApprovalInvalid``) without a reason,
    to a group or permission, to an unknown or inactive user, to the user themselves, or to the
    execution's requester unless the wait allows them. Writes an immutable ``Reassignment``;
    a decision by ``to`` records ``delegated_by``. Sends ``approval_reassigned`` on commit.
    """
    return store.transaction(lambda: _reassign(execution_id, user, to, reason, event))


def _reassign(
    execution_id: str, user: Any, to: Any, reason: str, event: str | None
) -> Reassignment:
    request = _locked(execution_id, event)
    if not request.is_open:
        raise ApprovalClosed(
            f"execution {execution_id!r} can no longer be reassigned: {request.outcome}"
        )
    username = user.get_username()
    if requested_by(user, request):
        raise ApprovalPermissionDenied(
            execution_id,
            REASSIGN_PERMISSION,
            f"you started execution {execution_id!r}, so you may not choose who decides it"
            " (segregation of duties)",
        )
    if can_decide(user, request):
        before = effective(request)
        target = _delegate(request, to, reason, username)
        after = [spec for spec in before if spec not in (f"user:{username}", EXCLUDED + target[5:])]
        after = list(dict.fromkeys([*after, EXCLUDED + username, target]))
    elif user.is_active and _holds_reassign_permission(user, request):
        before = effective(request)
        target = _delegate(request, to, reason, username)
        after = [target]
    else:
        raise ApprovalPermissionDenied(
            execution_id,
            REASSIGN_PERMISSION,
            f"you may reassign execution {execution_id!r} only if it is assigned to you,"
            f" or with the permission {REASSIGN_PERMISSION!r}",
        )
    assign(request, after)
    entry = Reassignment.objects.create(
        execution_id=execution_id,
        request=request,
        event=request.event,
        reassigned_by=username,
        to=target,
        reason=reason.strip(),
        assignees_before=before,
        assignees_after=after,
        reassigned_at=now(),
    )
    logger.info(
        "execution %s: approval %s reassigned by %s to %s",
        execution_id,
        request.event,
        username,
        target,
    )
    send(
        approval_reassigned,
        execution_id=execution_id,
        request=request,
        reassigned_by=username,
        to=target,
        reason=entry.reason,
    )
    return entry


def _delegate(request: ApprovalRequest, to: Any, reason: str, username: str) -> str:
    """The spec of the user ``to``, checked as a delegate of ``request`` by ``username``."""
    if not check_text(reason or "", "reason").strip():
        raise ApprovalInvalid("say why you reassign it: a reason is required", field="reason")
    try:
        target = normalize(to)
    except ValueError as exc:
        raise ApprovalInvalid(str(exc), field="to") from None
    if not target.startswith("user:"):
        raise ApprovalInvalid(f"reassign to one user, not {target!r}", field="to")
    name = check_text(target[5:], "to")
    user_model = get_user_model()
    if not user_model.objects.filter(**{user_model.USERNAME_FIELD: name}, is_active=True).exists():
        raise ApprovalInvalid(f"there is no active user {name!r} to reassign it to", field="to")
    if name == username:
        raise ApprovalInvalid("you cannot reassign a request to yourself", field="to")
    if name == request.execution.started_by and not request.allow_requester:
        raise ApprovalInvalid(f"{name!r} started this execution and may not decide it", field="to")
    if any(vote.reviewer == name for vote in request.votes):
        raise ApprovalInvalid(f"{name!r} voted on this request already", field="to")
    return target

"""The manager's inbox: open requests, one request with Approve/Reject, and the history.

Every view needs a logged-in user; deciding goes through ``decide``, which checks the permission
of the very request posted to, so a changed id in a URL decides nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from zart_django.errors import ZartError

from .errors import ApprovalNotFound
from .forms import DecisionForm
from .models import ApprovalRequest, Source
from .services import can_decide, decidable_by, find_request

HISTORY_LENGTH = 100


def may_see(user: Any, request: ApprovalRequest) -> bool:
    """Who may read a request: those who may decide it, and those who may view executions."""
    return can_decide(user, request) or user.has_perm("zart_django.view_execution")


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The open requests the user may decide, newest first."""
    return render(
        request, "zart_django/approvals/inbox.html", {"requests": decidable_by(request.user)}
    )


@login_required
def history(request: HttpRequest) -> HttpResponse:
    """Requests that were decided, expired or closed, that the user may see, newest first."""
    closed = ApprovalRequest.objects.closed().select_related("execution")
    visible = [r for r in closed[: HISTORY_LENGTH * 5] if may_see(request.user, r)]
    return render(
        request, "zart_django/approvals/history.html", {"requests": visible[:HISTORY_LENGTH]}
    )


@login_required
def detail(request: HttpRequest, execution_id: str) -> HttpResponse:
    """One request: what is asked, and the form, or the outcome once it is closed."""
    approval = _visible_request(request, execution_id)
    return _render_detail(request, approval, DecisionForm())


@login_required
@require_POST
def decide_view(request: HttpRequest, execution_id: str) -> HttpResponse:
    """Approve or reject as the logged-in user; 404 for no request, 403 without permission."""
    form = DecisionForm(request.POST)
    if not form.is_valid():
        approval = _visible_request(request, execution_id)
        return _render_detail(request, approval, form, status=400)
    try:
        record = form.decide(execution_id, request.user, Source.INBOX)
    except ZartError as exc:
        messages.error(request, f"Not decided: {exc}")
        return redirect("zart_django:detail", execution_id=execution_id)
    verdict = "Approved" if record.approved else "Rejected"
    messages.success(request, f"{verdict} {execution_id}. The execution resumes now.")
    return redirect("zart_django:inbox")


def _visible_request(request: HttpRequest, execution_id: str) -> ApprovalRequest:
    try:
        approval = find_request(execution_id)
    except ApprovalNotFound as exc:
        raise Http404(str(exc)) from exc
    if not may_see(request.user, approval):
        raise PermissionDenied("you may not see this approval request")
    return approval


def _render_detail(
    request: HttpRequest, approval: ApprovalRequest, form: DecisionForm, status: int = 200
) -> HttpResponse:
    context = {
        "approval": approval,
        "form": form,
        "can_decide": approval.is_open and can_decide(request.user, approval),
        "record": approval.record,
    }
    return render(request, "zart_django/approvals/detail.html", context, status=status)

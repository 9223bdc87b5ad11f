"""The manager's inbox: open requests, one request with Approve/Reject, and the history.

Every view needs a logged-in user; deciding goes through ``decide``, which checks the permission
of the very request posted to, so a changed id in a URL decides nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from zart_django.errors import ZartError

from .errors import ApprovalNotFound
from .forms import DecisionForm
from .models import ApprovalRequest, Source
from .services import can_decide, decidable_by, find_request, may_see, resume_note, visible_to

PAGE_SIZE = 50


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The open requests the user may decide, newest first, a page at a time (``?page=``)."""
    return _render_page(request, "zart_approvals/inbox.html", decidable_by(request.user))


@login_required
def history(request: HttpRequest) -> HttpResponse:
    """Requests that were decided, expired or closed, that the user may see, newest first, a
    page at a time (``?page=``)."""
    closed = visible_to(request.user).closed()
    return _render_page(request, "zart_approvals/history.html", closed)


def _render_page(
    request: HttpRequest, template: str, requests: QuerySet[ApprovalRequest]
) -> HttpResponse:
    """Render one page of ``requests``: ``requests`` holds the page's rows, ``page_obj`` and
    ``paginator`` the links (a page number out of range shows the nearest page)."""
    page = Paginator(requests, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "requests": page.object_list,
        "page_obj": page,
        "paginator": page.paginator,
        "is_paginated": page.has_other_pages(),
    }
    return render(request, template, context)


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
        return redirect("zart_approvals:detail", execution_id=execution_id)
    verdict = "Approved" if record.approved else "Rejected"
    messages.success(request, f"{verdict} {execution_id}. {resume_note()}")
    return redirect("zart_approvals:inbox")


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
    return render(request, "zart_approvals/detail.html", context, status=status)

"""The manager's inbox: open requests, one request with Approve/Reject, the history and its CSV.

Every view needs a logged-in user; deciding goes through ``decide``, which checks the permission
of the very request posted to, so a changed id in a URL decides nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F, QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from zart_django.counting import BoundedPaginator, page_number
from zart_django.errors import ZartError

from .errors import ApprovalNotFound
from .export import csv_rows
from .filters import HistoryFilter, InboxFilter, task_choices
from .forms import DecisionForm, ReassignForm
from .models import ApprovalRecord, ApprovalRequest, Source
from .services import (
    VIEW_PERMISSION,
    can_vote,
    decidable_by,
    find_request,
    may_reassign,
    may_see,
    refusal,
    requester,
    resume_note,
    visible_to,
)
from .timeline import story_of

PAGE_SIZE = 50
COUNT_BOUND = 1000
"""The inbox and the history count at most this many requests from the page asked for (20
pages): each is checked against the user's permissions, so counting costs per row."""


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    """The open requests the user may decide, the soonest deadline first (those without one
    last), filtered by ``?task=``, ``?q=`` (title, execution id, summary) and ``?assigned=``
    (``me``: naming the user; ``groups``: through a group or permission), a page at a time."""
    mine = decidable_by(request.user)
    filters = InboxFilter(request.GET, task_choices())
    requests = filters.apply(mine, request.user).order_by(
        F("deadline").asc(nulls_last=True), "-created_at", "-pk"
    )
    return _render_page(request, "zart_approvals/inbox.html", requests, filters)


@login_required
def history(request: HttpRequest) -> HttpResponse:
    """Requests that were decided, expired or closed, that the user may see, newest first,
    filtered by ``?reviewer=&task=&outcome=&since=&until=``, a page at a time (``?page=``)."""
    closed = visible_to(request.user).closed()
    filters = HistoryFilter(request.GET, task_choices())
    return _render_page(request, "zart_approvals/history.html", filters.requests(closed), filters)


@login_required
def history_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """The decisions the user may see, newest first, under the history's filters, as CSV
    (streamed; cells that a spreadsheet would read as a formula are made inert). Filters that
    do not parse are a 400 naming them, never an export of everything."""
    filters = HistoryFilter(request.GET, task_choices())
    if not filters.is_valid():
        return HttpResponseBadRequest(filters.errors.as_text(), content_type="text/plain")
    records = ApprovalRecord.objects.order_by("-decided_at", "-pk")
    if not request.user.has_perm(VIEW_PERMISSION):
        permitted = ApprovalRequest.objects.permitted_to(request.user).values("pk")
        records = records.filter(request__in=permitted)
    rows = csv_rows(filters.records(records))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="approval-decisions.csv"'
    return response


def _render_page(
    request: HttpRequest,
    template: str,
    requests: QuerySet[ApprovalRequest],
    filters: InboxFilter | HistoryFilter,
) -> HttpResponse:
    """Render one page of ``requests``: ``requests`` holds the page's rows, ``page_obj`` and
    ``paginator`` the links (a page number out of range shows the nearest page), ``filters``
    the form and ``query`` the filters as a query string for those links."""
    start_page = page_number(request.GET.get("page"))
    paginator = BoundedPaginator(requests, PAGE_SIZE, start_page=start_page, bound=COUNT_BOUND)
    page = paginator.get_page(start_page)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "requests": page.object_list,
        "page_obj": page,
        "paginator": page.paginator,
        "is_paginated": page.has_other_pages(),
        "filters": filters,
        "query": query.urlencode(),
    }
    return render(request, template, context)


@login_required
def detail(request: HttpRequest, execution_id: str) -> HttpResponse:
    """One request: what is asked, by which execution, what it did so far, earlier decisions,
    and the form, or the outcome once it is closed."""
    approval = _visible_request(request, execution_id)
    return _render_detail(request, approval, DecisionForm(approval=approval))


@login_required
@require_POST
def decide_view(request: HttpRequest, execution_id: str) -> HttpResponse:
    """Approve or reject as the logged-in user; 404 for no request, 403 without permission."""
    form = DecisionForm(request.POST, approval=_request_or_404(execution_id))
    if not form.is_valid():
        approval = _visible_request(request, execution_id)
        return _render_detail(request, approval, form, status=400)
    try:
        record = form.decide(execution_id, request.user, Source.INBOX)
    except ZartError as exc:
        messages.error(request, _("Not decided: %(reason)s") % {"reason": exc})
        return redirect("zart_approvals:detail", execution_id=execution_id)
    done = _("Approved %(id)s.") if record.approved else _("Rejected %(id)s.")
    messages.success(request, f"{done % {'id': execution_id}} {resume_note()}")
    return redirect("zart_approvals:inbox")


@login_required
@require_POST
def reassign_view(request: HttpRequest, execution_id: str) -> HttpResponse:
    """Hand the request to another user with a reason; 404 for no request, 403 without right."""
    form = ReassignForm(request.POST)
    if not form.is_valid():
        approval = _visible_request(request, execution_id)
        decision = DecisionForm(approval=approval)
        return _render_detail(request, approval, decision, status=400, reassign_form=form)
    try:
        entry = form.reassign(execution_id, request.user)
    except ZartError as exc:
        messages.error(request, _("Not reassigned: %(reason)s") % {"reason": exc})
        return redirect("zart_approvals:detail", execution_id=execution_id)
    to = entry.to.removeprefix("user:")
    messages.success(request, _("Reassigned %(id)s to %(to)s.") % {"id": execution_id, "to": to})
    return redirect("zart_approvals:inbox")


def _request_or_404(execution_id: str) -> ApprovalRequest:
    try:
        return find_request(execution_id)
    except ApprovalNotFound as exc:
        raise Http404(str(exc)) from exc


def _visible_request(request: HttpRequest, execution_id: str) -> ApprovalRequest:
    approval = _request_or_404(execution_id)
    if not may_see(request.user, approval):
        raise PermissionDenied(_("You may not see this approval request."))
    return approval


def _render_detail(
    request: HttpRequest,
    approval: ApprovalRequest,
    form: DecisionForm,
    status: int = 200,
    reassign_form: ReassignForm | None = None,
) -> HttpResponse:
    record = approval.record
    context = {
        "approval": approval,
        "form": form,
        "can_decide": can_vote(request.user, approval),
        "refusal": refusal(request.user, approval) if approval.is_open else None,
        "requester": requester(approval),
        "record": record,
        "votes": approval.votes,
        "can_reassign": may_reassign(request.user, approval),
        "reassign_form": reassign_form or ReassignForm(),
        "story": story_of(approval.execution_id),
        "earlier": _earlier_decisions(approval),
    }
    return render(request, "zart_approvals/detail.html", context, status=status)


def _earlier_decisions(approval: ApprovalRequest) -> list[ApprovalRecord]:
    """The execution's decisions on its other requests, oldest first: earlier waits and earlier
    runs (not those of an earlier execution that had the same id; this request's votes are
    shown as its votes)."""
    records = ApprovalRecord.objects.filter(
        execution_id=approval.execution_id, decided_at__gte=approval.execution.created_at
    ).exclude(request_id=approval.pk)
    return list(records.order_by("decided_at", "pk"))

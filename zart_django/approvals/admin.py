"""Admin for approvals: requests and decisions (read-only), and what an execution's admin gains.

The core registers ``ExecutionAdmin``; this module registers ``ApprovalExecutionAdmin``, its
subclass, in its place: an execution waiting for a person gets Approve/Reject on its page and the
list gets bulk actions and a "waiting for approval" filter, all deciding through ``decide``; the
page lists the execution's decisions. Deleting an execution takes its requests with it (they
cascade) and keeps its decisions.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from zart_django.admin import ExecutionAdmin, ReadOnly, StorableLookups, for_each
from zart_django.codec import check_text
from zart_django.errors import PayloadError, ZartError
from zart_django.models import Execution

from .errors import ApprovalNotFound
from .forms import DecisionForm, ReassignForm
from .models import (
    DEFAULT_PERMISSION,
    ApprovalRecord,
    ApprovalRequest,
    Reassignment,
    RequestStatus,
    Source,
)
from .services import (
    can_vote,
    decidable_by,
    decide,
    find_request,
    may_reassign,
    refusal,
    resume_note,
)
from .waiting import NAMESPACE


class DecisionInline(ReadOnly, admin.TabularInline):
    model = ApprovalRecord
    extra = 0
    verbose_name = "decision"
    fields = (
        "event",
        "approved",
        "reviewer",
        "reviewer_name",
        "delegated_by",
        "comment",
        "data",
        "source",
        "decided_at",
    )
    readonly_fields = fields


class WaitingForApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting for approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.value() == "waiting":
            return queryset.filter(
                Exists(ApprovalRequest.objects.open().filter(execution=OuterRef("pk")))
            )
        return queryset


class ApprovalChangeList(ChangeList):
    """The execution list, each row of the page marked ``awaiting_approval`` (it has an open
    request) by one query on the page's ids: a subquery per row would let PostgreSQL hash every
    open request of the table for one page.

    The query reads the page's requests of current runs and keeps the pending ones here: asked
    for ``status = 'pending'`` beside the ids, SQLite (which has no statistics unless someone
    runs ANALYZE) walks every open request by the status index instead of looking the ids up,
    100 ms a page at 100,000 open requests."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        ids = [execution.pk for execution in self.result_list]
        current = (
            ApprovalRequest.objects.of_current_runs()
            .filter(execution_id__in=ids)
            .order_by()
            .values_list("execution_id", "status")
        )
        open_ids = {pk for pk, status in current if status == RequestStatus.PENDING}
        for execution in self.result_list:
            execution.awaiting_approval = execution.pk in open_ids


def _decide_all(
    modeladmin: ExecutionAdmin, request: HttpRequest, queryset: QuerySet, approved: bool
) -> None:
    verdict = "Approved" if approved else "Rejected"

    def act(execution_id: str) -> None:
        decide(
            execution_id,
            request.user,
            approved=approved,
            comment=f"{verdict} in bulk from the admin",
            source=Source.ADMIN,
        )

    for_each(modeladmin, request, queryset, act, verdict, "Not decided")


class ApprovalExecutionAdmin(ExecutionAdmin):
    """``ExecutionAdmin`` with the approvals: Approve/Reject on the page and in bulk, the
    decisions inline, and the list's "waiting for approval" filter and column."""

    list_filter = ("status", WaitingForApprovalFilter, *ExecutionAdmin.list_filter[1:])
    inlines = (DecisionInline, *ExecutionAdmin.inlines)
    actions = ("approve_selected", "reject_selected", *ExecutionAdmin.actions)
    change_form_template = "admin/zart_approvals/execution/change_form.html"

    def get_formset_kwargs(
        self, request: HttpRequest, obj: Any, inline: Any, prefix: str
    ) -> dict[str, Any]:
        """The decisions shown are this execution's, not those of an earlier one with its id."""
        kwargs = super().get_formset_kwargs(request, obj, inline, prefix)
        if isinstance(inline, DecisionInline) and obj is not None:
            kwargs["queryset"] = kwargs["queryset"].filter(decided_at__gte=obj.created_at)
        return kwargs

    def has_decide_permission(self, request: HttpRequest) -> bool:
        """Whether to offer the bulk Approve/Reject: to holders of the default permission and to
        anyone with an open request to decide (an assignee, a holder of a task's permission).
        Each execution is still decided through ``decide``, which refuses whom it must."""
        user = request.user
        return user.has_perm(DEFAULT_PERMISSION) or decidable_by(user).exists()

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return ApprovalChangeList

    @admin.display(description="waiting on")
    def waiting(self, execution: Execution) -> str:
        if getattr(execution, "awaiting_approval", False):
            event = execution.waiting_on.removeprefix(NAMESPACE)
            return format_html("<strong>approval</strong> ({})", event or "—")
        return super().waiting(execution)

    @admin.action(description="Approve selected executions", permissions=["decide"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        _decide_all(self, request, queryset, approved=True)

    @admin.action(description="Reject selected executions", permissions=["decide"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        _decide_all(self, request, queryset, approved=False)

    def get_urls(self) -> list[URLPattern]:
        decide_url = path(
            "<path:object_id>/decide/",
            self.admin_site.admin_view(require_POST(self.decide_view)),
            name="zart_django_execution_decide",
        )
        reassign_url = path(
            "<path:object_id>/reassign/",
            self.admin_site.admin_view(require_POST(self.reassign_view)),
            name="zart_django_execution_reassign",
        )
        return [decide_url, reassign_url, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        try:
            approval = find_request(check_text(unquote(object_id), "execution id"))
        except (ApprovalNotFound, PayloadError):
            approval = None
        if approval is not None:
            context.update(
                approval=approval,
                approval_record=approval.record,
                approval_votes=approval.votes,
                approval_can_decide=can_vote(request.user, approval),
                approval_refusal=refusal(request.user, approval) if approval.is_open else None,
                approval_can_reassign=may_reassign(request.user, approval),
                decision_form=DecisionForm(approval=approval),
                reassign_form=ReassignForm(),
            )
        return super().change_view(request, object_id, form_url, context)

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST Approve/Reject with a comment from the execution's page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = reverse("admin:zart_django_execution_change", args=[object_id])
        try:
            execution_id = check_text(unquote(object_id), "execution id")
            form = DecisionForm(request.POST, approval=find_request(execution_id))
            if not form.is_valid():
                self.message_user(request, _form_problems(form), messages.ERROR)
                return HttpResponseRedirect(page)
            record = form.decide(execution_id, request.user, Source.ADMIN)
        except ZartError as exc:
            self.message_user(
                request, _("Not decided: %(reason)s") % {"reason": exc}, messages.ERROR
            )
            return HttpResponseRedirect(page)
        done = _("Approved %(id)s.") if record.approved else _("Rejected %(id)s.")
        self.message_user(request, f"{done % {'id': execution_id}} {resume_note()}")
        return HttpResponseRedirect(page)

    def reassign_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST Reassign (to a username, with a reason) from the execution's page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        page = reverse("admin:zart_django_execution_change", args=[object_id])
        form = ReassignForm(request.POST)
        if not form.is_valid():
            self.message_user(request, _("Name the user and say why."), messages.ERROR)
            return HttpResponseRedirect(page)
        try:
            execution_id = check_text(unquote(object_id), "execution id")
            entry = form.reassign(execution_id, request.user)
        except ZartError as exc:
            self.message_user(
                request, _("Not reassigned: %(reason)s") % {"reason": exc}, messages.ERROR
            )
            return HttpResponseRedirect(page)
        to = entry.to.removeprefix("user:")
        self.message_user(
            request, _("Reassigned %(id)s to %(to)s.") % {"id": execution_id, "to": to}
        )
        return HttpResponseRedirect(page)


def _form_problems(form: DecisionForm) -> str:
    """What is wrong with a posted decision form, naming the decision data's fields."""
    if form.errors.get("decision"):
        return _("Choose Approve or Reject.")
    problems = dict(form.errors)
    if form.data_form is not None:
        problems.update(form.data_form.errors)
    reason = "; ".join(
        f"{name}: {' '.join(str(m) for m in errors)}" for name, errors in problems.items()
    )
    return _("Not decided: %(reason)s") % {"reason": reason}


admin.site.unregister(Execution)  # registered by zart_django.admin, imported above
admin.site.register(Execution, ApprovalExecutionAdmin)


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(StorableLookups, ReadOnly, admin.ModelAdmin):
    list_display = ("title", "execution", "event", "status", "permission", "created_at")
    list_filter = ("status", "event")
    search_fields = ("execution__id", "title", "summary")
    readonly_fields = (
        "execution",
        "event",
        "title",
        "summary",
        "permission",
        "assignees",
        "required",
        "allow_requester",
        "form",
        "status",
        "created_at",
        "closed_at",
    )


@admin.register(ApprovalRecord)
class ApprovalRecordAdmin(StorableLookups, ReadOnly, admin.ModelAdmin):
    list_display = ("execution_id", "event", "approved", "reviewer", "source", "decided_at")
    list_filter = ("approved", "source")
    search_fields = ("execution__id", "reviewer", "comment")  # the record's own column: no join
    readonly_fields = (
        "execution_id",
        "task_name",
        "event",
        "approved",
        "reviewer",
        "reviewer_name",
        "delegated_by",
        "comment",
        "data",
        "source",
        "decided_at",
    )
    fields = readonly_fields


@admin.register(Reassignment)
class ReassignmentAdmin(StorableLookups, ReadOnly, admin.ModelAdmin):
    list_display = ("execution_id", "event", "reassigned_by", "to", "reassigned_at")
    search_fields = ("execution_id", "reassigned_by", "to", "reason")
    readonly_fields = (
        "execution_id",
        "event",
        "reassigned_by",
        "to",
        "reason",
        "assignees_before",
        "assignees_after",
        "reassigned_at",
    )
    fields = readonly_fields

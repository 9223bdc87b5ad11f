"""Admin for executions and approvals. History is read-only: steps, events and decisions are shown,
never edited. An execution waiting for a person gets Approve/Reject on its page, and the list gets
bulk actions; both decide through ``zart_django.approvals.decide``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Exists, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from . import clock
from .approvals import can_decide, decide, find_request
from .approvals.errors import ApprovalNotFound
from .approvals.forms import DecisionForm
from .approvals.models import (
    DEFAULT_PERMISSION,
    ApprovalRecord,
    ApprovalRequest,
    Source,
)
from .approvals.waiting import NAMESPACE
from .codec import check_text, displayable
from .errors import PayloadError, ZartError
from .models import ACTIVE_STATUSES, Event, Execution

_UNCLAIMED_SHOWN_AFTER = timedelta(minutes=1)


class _ReadOnly:
    """Mixin: the rows are history; they may be looked at, not added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class _StorableLookups:
    """Mixin: an object id, search or filter value no database can hold (a NUL character) gets
    the admin's own "does not exist" and "invalid lookup" answers, not a database error (500)."""

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        try:
            check_text(object_id, "object id")
        except PayloadError:
            return None
        return super().get_object(request, object_id, from_field)

    def get_changelist_instance(self, request: HttpRequest) -> Any:
        for key, values in request.GET.lists():
            for value in (key, *values):
                try:
                    check_text(value, f"query parameter {key!r}")
                except PayloadError as exc:
                    raise IncorrectLookupParameters(exc) from exc
        return super().get_changelist_instance(request)


class EventInline(_ReadOnly, admin.TabularInline):
    model = Event
    extra = 0
    fields = ("name", "payload", "created_at")
    readonly_fields = fields


class DecisionInline(_ReadOnly, admin.TabularInline):
    model = ApprovalRecord
    extra = 0
    verbose_name = "decision"
    fields = ("event", "approved", "reviewer", "reviewer_name", "comment", "source", "decided_at")
    readonly_fields = fields


class WaitingForApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting for approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.value() == "waiting":
            return queryset.filter(awaiting_approval=True)
        return queryset


class UnclaimedFilter(admin.SimpleListFilter):
    """Executions due for a while that no worker claimed: their task is in no running worker's
    code (a deploy dropped it or has not added it yet), or no worker runs."""

    title = "not claimed for"
    parameter_name = "unclaimed"
    SPANS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("5m", "5 minutes or more"), ("1h", "an hour or more"), ("1d", "a day or more")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        span = self.SPANS.get(self.value() or "")
        if span is None:
            return queryset
        return queryset.filter(status__in=ACTIVE_STATUSES, scheduled_at__lte=clock.now() - span)


def _json(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(displayable(value), indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', text)


def _decide_all(
    modeladmin: ExecutionAdmin, request: HttpRequest, queryset: QuerySet, approved: bool
) -> None:
    verdict = "Approved" if approved else "Rejected"
    done, refused = [], []
    for execution_id in queryset.values_list("id", flat=True):
        try:
            decide(
                execution_id,
                request.user,
                approved=approved,
                comment=f"{verdict} in bulk from the admin",
                source=Source.ADMIN,
            )
            done.append(execution_id)
        except ZartError as exc:
            refused.append(str(exc))
    if done:
        modeladmin.message_user(request, f"{verdict} {len(done)}: {', '.join(done)}")
    for reason in refused:
        modeladmin.message_user(request, f"Not decided: {reason}", messages.ERROR)


@admin.register(Execution)
class ExecutionAdmin(_StorableLookups, _ReadOnly, admin.ModelAdmin):
    list_display = ("id", "task_name", "status", "waiting", "unclaimed", "age", "finished_at")
    list_filter = ("status", WaitingForApprovalFilter, UnclaimedFilter, "task_name")
    search_fields = ("id", "input")
    date_hierarchy = "created_at"
    fields = (
        "id",
        "task_name",
        "status",
        "waiting_on",
        "created_at",
        "finished_at",
        "pretty_input",
        "pretty_output",
        "error",
        "timeline",
    )
    readonly_fields = fields
    inlines = (DecisionInline, EventInline)
    actions = ("approve_selected", "reject_selected")
    change_form_template = "admin/zart_django/execution/change_form.html"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(DEFAULT_PERMISSION)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Execution]:
        pending = ApprovalRequest.objects.open().filter(execution=OuterRef("pk"))
        return super().get_queryset(request).annotate(awaiting_approval=Exists(pending))

    @admin.display(description="waiting on")
    def waiting(self, execution: Execution) -> str:
        if getattr(execution, "awaiting_approval", False):
            event = execution.waiting_on.removeprefix(NAMESPACE)
            return format_html("<strong>approval</strong> ({})", event or "—")
        return execution.waiting_on or "—"

    @admin.display(description="not claimed for")
    def unclaimed(self, execution: Execution) -> str:
        """How long it has been due with no worker taking it, once that is over a minute."""
        now = clock.now()
        waited = execution.unclaimed_for(now)
        if waited is None or waited < _UNCLAIMED_SHOWN_AFTER:
            return "—"
        return timesince(now - waited, now)

    @admin.display(description="age", ordering="created_at")
    def age(self, execution: Execution) -> str:
        return timesince(execution.created_at)

    @admin.display(description="input")
    def pretty_input(self, execution: Execution) -> str:
        return _json(execution.input)

    @admin.display(description="output")
    def pretty_output(self, execution: Execution) -> str:
        return _json(execution.output)

    @admin.display(description="step timeline")
    def timeline(self, execution: Execution) -> str:
        steps = list(execution.steps.order_by("position"))
        if not steps:
            return "No steps yet."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    s.position,
                    s.name,
                    s.get_kind_display(),
                    s.get_status_display(),
                    s.attempts,
                    _duration(s),
                    s.error
                    or (json.dumps(displayable(s.result), ensure_ascii=False) if s.result else "—"),
                )
                for s in steps
            ),
        )
        return format_html(
            '<table class="zart-timeline"><thead><tr><th>#</th><th>Step</th><th>Kind</th>'
            "<th>Status</th><th>Attempts</th><th>Duration</th><th>Result or error</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            rows,
        )

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
        return [decide_url, *super().get_urls()]

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
                approval_can_decide=approval.is_open and can_decide(request.user, approval),
                decision_form=DecisionForm(),
            )
        return super().change_view(request, object_id, form_url, context)

    def decide_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST Approve/Reject with a comment from the execution's page."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DecisionForm(request.POST)
        page = reverse("admin:zart_django_execution_change", args=[object_id])
        if not form.is_valid():
            self.message_user(request, "Choose Approve or Reject.", messages.ERROR)
            return HttpResponseRedirect(page)
        try:
            execution_id = check_text(unquote(object_id), "execution id")
            record = form.decide(execution_id, request.user, Source.ADMIN)
        except ZartError as exc:
            self.message_user(request, f"Not decided: {exc}", messages.ERROR)
            return HttpResponseRedirect(page)
        verdict = "Approved" if record.approved else "Rejected"
        self.message_user(request, f"{verdict} {execution_id}; the execution resumes now.")
        return HttpResponseRedirect(page)


def _duration(step: Any) -> str:
    if step.finished_at is None:
        return "—"
    seconds = (step.finished_at - step.started_at).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(_StorableLookups, _ReadOnly, admin.ModelAdmin):
    list_display = ("title", "execution", "event", "status", "permission", "created_at")
    list_filter = ("status", "event")
    search_fields = ("execution__id", "title", "summary")
    readonly_fields = (
        "execution",
        "event",
        "title",
        "summary",
        "permission",
        "status",
        "created_at",
        "closed_at",
    )


@admin.register(ApprovalRecord)
class ApprovalRecordAdmin(_StorableLookups, _ReadOnly, admin.ModelAdmin):
    list_display = ("execution_id", "event", "approved", "reviewer", "source", "decided_at")
    list_filter = ("approved", "source")
    search_fields = ("execution_id", "reviewer", "comment")
    readonly_fields = (
        "execution_id",
        "task_name",
        "event",
        "approved",
        "reviewer",
        "reviewer_name",
        "comment",
        "source",
        "decided_at",
    )
    fields = readonly_fields

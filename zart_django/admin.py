"""Admin for executions. History is read-only: steps and events are shown, never edited. Users with
``change_execution`` get Retry, Rerun from a step and Restart on the page (and Retry/Restart as
bulk actions), through ``DurableScheduler``; the timeline shows every run. A user allowed to
delete executions may delete finished ones, as ``DurableScheduler.delete`` does: the rows that
cascade from them go with them. Schedules are listed read-only, with Pause and Resume actions
for users who may change them (and Delete, for the row of a task that is gone from the code).
``zart_django.approvals`` registers a subclass of
``ExecutionAdmin`` in its place, which adds Approve/Reject and the decisions."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import CASCADE, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince
from django.views.decorators.http import require_POST

from . import clock, schedules
from .codec import check_text, displayable
from .counting import COUNT_BOUND, BoundedPaginator, page_number
from .errors import PayloadError, ZartError
from .models import (
    ACTIVE_STATUSES,
    RERUNNABLE_STATUSES,
    RETRYABLE_STATUSES,
    UNCLAIMED_SHOWN_AFTER,
    Event,
    Execution,
    Schedule,
    StepKind,
    StepStatus,
)
from .registry import default_registry
from .scheduler import DurableScheduler, RunInfo, StepInfo

RUN_PERMISSION = "zart_django.change_execution"
_KINDS = dict(StepKind.choices)
_STEP_STATUSES = dict(StepStatus.choices)
_BEGAN = {"start": "started", "retry": "retry", "rerun": "rerun", "restart": "restart"}


class ReadOnly:
    """Mixin: the rows are history; they may be looked at, not added, changed or deleted."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StorableLookups:
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


class EventInline(ReadOnly, admin.TabularInline):
    model = Event
    extra = 0
    fields = ("name", "payload", "created_at")
    readonly_fields = fields


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


class TaskFilter(admin.SimpleListFilter):
    """The tasks the code registers (``default_registry``), read without a query: a list of
    millions of executions is not scanned for its distinct task names. ``?task_name=`` of a
    task gone from the code still filters."""

    title = "task name"
    parameter_name = "task_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in default_registry.names()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> QuerySet[Execution]:
        return queryset.filter(task_name=self.value()) if self.value() else queryset


def _json(value: Any) -> str:
    if value is None:
        return "—"
    text = json.dumps(displayable(value), indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="margin:0;white-space:pre-wrap">{}</pre>', text)


def for_each(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    queryset: QuerySet,
    act: Callable[[str], Any],
    done_as: str,
    refused_as: str,
) -> None:
    """A bulk action: ``act`` on each selected row's key (an execution's id, a schedule's task),
    then one message for those done and one error per refusal (a ``ZartError``'s words)."""
    done, refused = [], []
    for key in queryset.values_list("pk", flat=True):
        try:
            act(key)
            done.append(key)
        except ZartError as exc:
            refused.append(str(exc))
    if done:
        modeladmin.message_user(request, f"{done_as} {len(done)}: {', '.join(done)}")
    for reason in refused:
        modeladmin.message_user(request, f"{refused_as}: {reason}", messages.ERROR)


@admin.register(Execution)
class ExecutionAdmin(StorableLookups, ReadOnly, admin.ModelAdmin):
    list_display = ("id", "task_name", "status", "waiting", "unclaimed", "age", "finished_at")
    list_filter = (
        "status",
        UnclaimedFilter,
        TaskFilter,
        ("created_at", admin.DateFieldListFilter),
    )
    search_fields = ("id", "input")
    show_full_result_count = False
    count_bound = COUNT_BOUND
    fields = (
        "id",
        "task_name",
        "status",
        "waiting_on",
        "started_by",
        "parent_link",
        "children_links",
        "created_at",
        "finished_at",
        "pretty_input",
        "pretty_output",
        "error",
        "compensation_status",
        "pretty_compensation",
        "timeline",
    )
    readonly_fields = fields
    inlines = (EventInline,)
    actions = ("retry_selected", "restart_selected")
    change_form_template = "admin/zart_django/execution/change_form.html"

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet[Execution],
        per_page: int,
        *args: Any,
        **kwargs: Any,
    ) -> BoundedPaginator:
        """A paginator that counts at most ``count_bound`` rows from the page asked for."""
        start_page = page_number(request.GET.get("p"))
        return BoundedPaginator(
            queryset, per_page, *args, start_page=start_page, bound=self.count_bound, **kwargs
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Django's delete permission, for finished executions only (cancel a running one first)."""
        allowed = admin.ModelAdmin.has_delete_permission(self, request, obj)
        return allowed and (obj is None or obj.is_finished)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> tuple[Any, ...]:
        """The rows that cascade from an execution (steps, events, an app's such as approval
        requests) go with it without a permission of their own (their admins are read-only).
        A selection with unfinished executions is refused, naming them."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        for relation in Execution._meta.related_objects:
            if relation.on_delete is CASCADE:
                perms_needed.discard(relation.related_model._meta.verbose_name)
        unfinished = [str(obj.pk) for obj in objs if not obj.is_finished]
        if unfinished and admin.ModelAdmin.has_delete_permission(self, request):
            perms_needed.discard(Execution._meta.verbose_name)
            perms_needed.add(f"unfinished executions (cancel them first): {', '.join(unfinished)}")
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: Execution) -> None:
        self.delete_queryset(request, Execution.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        """Delete the finished ones through ``DurableScheduler.delete``; name those kept."""
        ids = list(queryset.values_list("pk", flat=True))
        DurableScheduler().delete(ids)
        kept = list(Execution.objects.filter(pk__in=ids).values_list("pk", flat=True))
        if kept:
            self.message_user(
                request,
                f"Not deleted (not finished: cancel them first): {', '.join(kept)}",
                messages.WARNING,
            )

    def has_run_permission(self, request: HttpRequest) -> bool:
        """Who may retry, rerun or restart: users with ``change_execution``."""
        return request.user.has_perm(RUN_PERMISSION)

    @admin.display(description="waiting on")
    def waiting(self, execution: Execution) -> str:
        return execution.waiting_on or "—"

    @admin.display(description="not claimed for")
    def unclaimed(self, execution: Execution) -> str:
        """How long it has been due with no worker taking it, once that is over a minute."""
        now = clock.now()
        waited = execution.unclaimed_for(now)
        if waited is None or waited < UNCLAIMED_SHOWN_AFTER:
            return "—"
        return timesince(now - waited, now)

    @admin.display(description="age", ordering="created_at")
    def age(self, execution: Execution) -> str:
        return timesince(execution.created_at)

    @admin.display(description="parent")
    def parent_link(self, execution: Execution) -> str:
        """The execution that started it with ``start_child``, linked."""
        return _execution_link(execution.parent_id) if execution.parent_id else "—"

    @admin.display(description="children")
    def children_links(self, execution: Execution) -> str:
        """The executions it started with ``start_child``, oldest first, linked, with status."""
        children = execution.children.order_by("created_at", "id").only("id", "status")
        if not children:
            return "—"
        return format_html_join(
            ", ", "{} ({})", ((_execution_link(c.pk), c.get_status_display()) for c in children)
        )

    @admin.display(description="input")
    def pretty_input(self, execution: Execution) -> str:
        return _json(execution.input)

    @admin.display(description="output")
    def pretty_output(self, execution: Execution) -> str:
        return _json(execution.output)

    @admin.display(description="compensation")
    def pretty_compensation(self, execution: Execution) -> str:
        return _json(execution.compensation)

    @admin.display(description="step timeline")
    def timeline(self, execution: Execution) -> str:
        runs = DurableScheduler().get(execution.pk).runs
        if len(runs) == 1:
            return _steps_table(runs[0].steps)
        return format_html_join(
            "",
            '<h3 class="zart-run">{}</h3>{}',
            ((_run_heading(run, len(runs)), _steps_table(run.steps)) for run in reversed(runs)),
        )

    @admin.action(description="Retry selected failed executions", permissions=["run"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        for_each(self, request, queryset, DurableScheduler().retry, "Retrying", "Not done")

    @admin.action(description="Restart selected executions", permissions=["run"])
    def restart_selected(self, request: HttpRequest, queryset: QuerySet[Execution]) -> None:
        for_each(self, request, queryset, DurableScheduler().restart, "Restarted", "Not done")

    def get_urls(self) -> list[URLPattern]:
        run_url = path(
            "<path:object_id>/run/",
            self.admin_site.admin_view(require_POST(self.run_view)),
            name="zart_django_execution_run",
        )
        return [run_url, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        context = dict(extra_context or {})
        context.update(self._run_buttons(request, object_id))
        return super().change_view(request, object_id, form_url, context)

    def _run_buttons(self, request: HttpRequest, object_id: str) -> dict[str, Any]:
        """What the page offers a user with ``change_execution``: Retry if the execution may be
        retried, Rerun from one of its current run's steps and Restart unless it is running."""
        if not self.has_run_permission(request):
            return {}
        try:
            info = DurableScheduler().get(check_text(unquote(object_id), "execution id"))
        except ZartError:
            return {}
        rerunnable = info.status in RERUNNABLE_STATUSES
        return {
            "can_retry": info.status in RETRYABLE_STATUSES,
            "can_restart": rerunnable,
            "rerun_steps": [s.name for s in info.steps] if rerunnable else [],
        }

    def run_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """POST Retry, Rerun (from the step chosen) or Restart from the execution's page."""
        if not self.has_run_permission(request):
            raise PermissionDenied
        page = reverse("admin:zart_django_execution_change", args=[object_id])
        scheduler = DurableScheduler()
        action = request.POST.get("run", "")
        try:
            execution_id = check_text(unquote(object_id), "execution id")
            if action == "retry":
                info = scheduler.retry(execution_id)
            elif action == "rerun":
                info = scheduler.rerun(execution_id, request.POST.get("from_step", ""))
            elif action == "restart":
                info = scheduler.restart(execution_id)
            else:
                self.message_user(request, "Choose Retry, Rerun or Restart.", messages.ERROR)
                return HttpResponseRedirect(page)
        except ZartError as exc:
            self.message_user(request, f"Not done: {exc}", messages.ERROR)
            return HttpResponseRedirect(page)
        self.message_user(request, f"Run {info.run} of {execution_id} ({action}) is pending now.")
        return HttpResponseRedirect(page)


def _execution_link(execution_id: str) -> str:
    """A link to the execution's admin page."""
    url = reverse("admin:zart_django_execution_change", args=[quote(execution_id)])
    return format_html('<a href="{}">{}</a>', url, execution_id)


def _run_heading(run: RunInfo, count: int) -> str:
    """How the timeline titles one run: its number, how it began, how it ended."""
    began = _BEGAN.get(run.began, run.began)
    if run.from_step:
        began += f" from {run.from_step}"
    current = " (current)" if run.number == count else ""
    detail = f": {run.error.splitlines()[0]}" if run.error else ""
    return f"Run {run.number}{current}: {began} {run.started_at:%Y-%m-%d %H:%M:%S}, {run.status}{detail}"


def _steps_table(steps: list[StepInfo]) -> str:
    if not steps:
        return format_html("<p>{}</p>", "No steps yet.")
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                s.position,
                s.name,
                _KINDS.get(s.kind, s.kind),
                _STEP_STATUSES.get(s.status, s.status),
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


def _duration(step: Any) -> str:
    if step.finished_at is None:
        return "—"
    seconds = (step.finished_at - step.started_at).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    """The schedules the workers synced from the code: read-only but for Pause and Resume."""

    list_display = (
        "task_name",
        "expression",
        "timezone",
        "overlap",
        "next_run_at",
        "last_occurrence",
        "paused",
        "active",
    )
    list_filter = ("paused", "active", "overlap")
    search_fields = ("task_name",)
    readonly_fields = [field.name for field in Schedule._meta.fields]
    actions = ["pause_selected", "resume_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="Schedule")
    def expression(self, row: Schedule) -> str:
        return schedules.spec_of(row).describe()

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for_each(self, request, queryset, schedules.pause, "Paused", "Not done")

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume_selected(self, request: HttpRequest, queryset: QuerySet[Schedule]) -> None:
        for_each(self, request, queryset, schedules.resume, "Resumed", "Not done")

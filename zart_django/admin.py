"""Admin for executions, with their steps and events shown read-only: history is not editable."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Event, Execution, StepResult


class _ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class StepInline(_ReadOnlyInline):
    model = StepResult
    fields = (
        "position",
        "name",
        "kind",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "result",
        "error",
    )
    readonly_fields = fields


class EventInline(_ReadOnlyInline):
    model = Event
    fields = ("name", "payload", "created_at")
    readonly_fields = fields


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "task_name", "status", "waiting_on", "created_at", "finished_at")
    list_filter = ("status", "task_name")
    search_fields = ("id", "input")
    readonly_fields = tuple(f.name for f in Execution._meta.fields)
    inlines = (StepInline, EventInline)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

"""What the engine stores: executions, the results of their steps, and the events offered to them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import models
from django.db.models import Q


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"
    BLOCKED = "blocked", "Blocked"


ACTIVE_STATUSES = (Status.PENDING, Status.RUNNING, Status.WAITING)
FINISHED_STATUSES = (Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT)
# BLOCKED is neither: its code no longer matches its history; a worker on fixed code resumes it.


class Execution(models.Model):
    """One run of a durable task.

    ``scheduled_at`` is when a worker should next look at it: the due time while pending or waiting
    (empty while waiting with no deadline), the lease's expiry while running. ``blocked_at`` is
    when replay last found that its code no longer matches its history (the database's clock).
    """

    id = models.CharField(primary_key=True, max_length=200)
    task_name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    input = models.JSONField(null=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    waiting_on = models.CharField(max_length=200, blank=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(null=True, blank=True)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_owner = models.CharField(max_length=200, blank=True)
    recoveries = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["scheduled_at"],
                name="zart_execution_due",
                condition=Q(status__in=["pending", "running", "waiting"]),
            ),
            models.Index(fields=["status", "task_name"], name="zart_execution_status"),
            models.Index(fields=["created_at"], name="zart_execution_created"),
        ]
        permissions = [("decide_approval", "Can approve or reject executions waiting for a person")]

    def __str__(self) -> str:
        return f"{self.id} ({self.task_name}, {self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    def unclaimed_for(self, now: datetime) -> timedelta | None:
        """How long it has been due with no worker claiming it (None if it is not due): a
        running worker that has its task claims it within a poll interval, so minutes here mean
        that no running worker has this task's code (or that no worker runs at all)."""
        due = self.status in ACTIVE_STATUSES and self.scheduled_at is not None
        return now - self.scheduled_at if due and self.scheduled_at <= now else None


class StepKind(models.TextChoices):
    STEP = "step", "Step"
    EVENT = "event", "Event wait"
    SLEEP = "sleep", "Sleep"
    PATCH = "patch", "Patch marker"


class StepStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Retrying"
    WAITING = "waiting", "Waiting"
    TIMED_OUT = "timed_out", "Timed out"


class StepResult(models.Model):
    """The checkpoint of one step, wait or sleep, at its position in the execution's history."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=8, choices=StepKind.choices, default=StepKind.STEP)
    status = models.CharField(max_length=16, choices=StepStatus.choices)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=1)
    deadline = models.DateTimeField(null=True, blank=True)
    type_ref = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "position"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "position"], name="zart_step_position")
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} #{self.position} {self.name} ({self.status})"


class Event(models.Model):
    """A payload offered to an execution under a name; the wait for that name consumes it."""

    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    name = models.CharField(max_length=200)
    payload = models.JSONField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "name"], name="zart_event_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} -> {self.execution_id}"


from .approvals.models import ApprovalRecord, ApprovalRequest  # noqa: E402,F401

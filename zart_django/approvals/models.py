"""What approvals store: the requests executions make for a decision, and the immutable decisions.

Both models live in the ``zart_django`` app (imported by ``zart_django.models``).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from zart_django.models import FINISHED_STATUSES, Execution

DEFAULT_PERMISSION = "zart_django.decide_approval"


class RequestStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DECIDED = "decided", "Decided"
    EXPIRED = "expired", "Expired"


class Source(models.TextChoices):
    ADMIN = "admin", "Django admin"
    INBOX = "inbox", "Inbox"
    API = "api", "REST API"
    CODE = "code", "Code"


class ApprovalRequestQuerySet(models.QuerySet["ApprovalRequest"]):
    def open(self) -> ApprovalRequestQuerySet:
        """Requests still waiting for a decision, on executions that have not finished."""
        return self.filter(status=RequestStatus.PENDING).exclude(
            execution__status__in=FINISHED_STATUSES
        )

    def closed(self) -> ApprovalRequestQuerySet:
        """Requests decided, expired, or left undecided by an execution that ended."""
        return self.exclude(pk__in=self.open().values("pk"))


class ApprovalRequest(models.Model):
    """An execution asks a person to decide; written by ``wait_for_approval``, once per event."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="approval_requests"
    )
    event = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    permission = models.CharField(max_length=200, default=DEFAULT_PERMISSION)
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = ApprovalRequestQuerySet.as_manager()

    class Meta:
        app_label = "zart_django"
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "event"], name="zart_approval_once")
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="zart_approval_status")]

    def __str__(self) -> str:
        return f"{self.title} ({self.execution_id}, {self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == RequestStatus.PENDING and not self.execution.is_finished

    @property
    def outcome(self) -> str:
        """What became of it, in words: approved, rejected, expired, the execution's end, pending."""
        if self.status == RequestStatus.DECIDED:
            record = self.record
            return "approved" if record and record.approved else "rejected"
        if self.status == RequestStatus.EXPIRED:
            return "expired"
        if self.execution.is_finished:
            return f"closed (execution {self.execution.get_status_display().lower()})"
        return "pending"

    @property
    def record(self) -> ApprovalRecord | None:
        """The decision taken on this request, if any."""
        return ApprovalRecord.objects.filter(
            execution_id=self.execution_id, event=self.event
        ).first()


class ApprovalRecord(models.Model):
    """The audit record of one decision. Written once by ``decide`` and never changed.

    It keeps the execution's id even if the execution is deleted (no database constraint).
    """

    execution = models.ForeignKey(
        Execution,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="approval_records",
    )
    task_name = models.CharField(max_length=200)
    event = models.CharField(max_length=200)
    approved = models.BooleanField()
    reviewer = models.CharField(max_length=150, help_text="The deciding user's username.")
    reviewer_name = models.CharField(max_length=300, blank=True)
    comment = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    decided_at = models.DateTimeField()

    class Meta:
        app_label = "zart_django"
        ordering = ["-decided_at"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "event"], name="zart_decision_once")
        ]

    def __str__(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        return f"{self.execution_id}: {verdict} by {self.reviewer}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("an approval record is immutable once written")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError("an approval record is immutable: it cannot be deleted")

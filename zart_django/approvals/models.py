"""What approvals store: the requests executions make for a decision, and the immutable decisions.

Both models live in the ``zart_approvals`` app, on top of the core's ``Execution``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.db.models import CharField, F, Prefetch, Q, Value
from django.db.models.functions import Concat
from django.utils.translation import gettext_lazy as _

from zart_django.models import FINISHED_STATUSES, EngineManager, EngineModel, Execution

DEFAULT_PERMISSION = "zart_approvals.decide_approval"
PREFETCHED_DECISIONS = "prefetched_decisions"


class RequestStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DECIDED = "decided", _("Decided")
    EXPIRED = "expired", _("Expired")


class Source(models.TextChoices):
    ADMIN = "admin", _("Django admin")
    INBOX = "inbox", _("Inbox")
    API = "api", _("REST API")
    CODE = "code", _("Code")


class ApprovalRequestQuerySet(models.QuerySet["ApprovalRequest"]):
    def open(self) -> ApprovalRequestQuerySet:
        """Requests still waiting for a decision, asked by the current run of executions that have
        not finished."""
        return self.filter(status=RequestStatus.PENDING, run=F("execution__run")).exclude(
            execution__status__in=FINISHED_STATUSES
        )

    def closed(self) -> ApprovalRequestQuerySet:
        """Requests decided, expired, left undecided by an execution that ended, or by a run that a
        retry, rerun or restart replaced."""
        return self.filter(
            ~Q(status=RequestStatus.PENDING)
            | Q(execution__status__in=FINISHED_STATUSES)
            | ~Q(run=F("execution__run"))
        )

    def permitted_to(self, user: Any) -> ApprovalRequestQuerySet:
        """Requests whose permission ``user`` holds, decided by the database in the same query.

        Reads the tables of Django's ``ModelBackend``: an active superuser holds every
        permission, an active user those given directly or through a group; inactive and
        anonymous users none. Permissions granted only by a custom authentication backend are
        not seen here (``can_decide``, which calls ``has_perm``, stays the authority to decide).
        """
        if not (user.is_authenticated and user.is_active):
            return self.none()
        if getattr(user, "is_superuser", False):
            return self
        if not hasattr(user, "user_permissions"):
            return self.none()
        from django.contrib.auth.models import Permission

        direct = user.user_permissions.all()
        via_groups = Permission.objects.filter(group__in=user.groups.all())
        return self.filter(
            Q(permission__in=self._names(direct)) | Q(permission__in=self._names(via_groups))
        )

    def _names(self, permissions: models.QuerySet[Any]) -> Any:
        """The permissions as "app_label.codename" strings: a subquery when the auth tables are
        on this query's database, else a list read from theirs (``ZART["DATABASE"]`` elsewhere)."""
        dotted = Concat("content_type__app_label", Value("."), "codename", output_field=CharField())
        names = permissions.annotate(dotted=dotted).values_list("dotted", flat=True)
        return names if names.db == self.db else list(names)

    def with_decisions(self) -> ApprovalRequestQuerySet:
        """Load each request's execution and decision with the page (two queries in all), for
        lists that show ``outcome`` and ``record``."""
        decisions = Prefetch("execution__approval_records", to_attr=PREFETCHED_DECISIONS)
        return self.select_related("execution").prefetch_related(decisions)


class ApprovalRequest(EngineModel):
    """An execution asks a person to decide; written by ``wait_for_approval``, once per event and
    run (a rerun from before the wait asks again; a run that replays the decided wait does not)."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="approval_requests"
    )
    run = models.PositiveIntegerField(default=1)
    event = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    summary = models.TextField(blank=True)
    permission = models.CharField(max_length=200, default=DEFAULT_PERMISSION)
    status = models.CharField(
        max_length=16, choices=RequestStatus.choices, default=RequestStatus.PENDING
    )
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    deadline = models.DateTimeField(
        null=True, blank=True, help_text="When it expires undecided (created_at + its timeout)."
    )
    escalated_to = models.JSONField(
        default=list, blank=True, help_text="Usernames the request was escalated to."
    )

    objects = EngineManager.from_queryset(ApprovalRequestQuerySet)()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("approval request")
        verbose_name_plural = _("approval requests")
        permissions = [
            ("decide_approval", _("Can approve or reject executions waiting for a person"))
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "run", "event"], name="zart_approval_run_once"
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="zart_approval_status"),
            models.Index(fields=["status", "deadline"], name="zart_approval_deadline"),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.execution_id}, {self.status})"

    @property
    def is_open(self) -> bool:
        return (
            self.status == RequestStatus.PENDING
            and not self.execution.is_finished
            and self.run == self.execution.run
        )

    @property
    def outcome(self) -> str:
        """What became of it, in words: approved, rejected, expired, replaced by a later run, the
        execution's end, pending."""
        if self.status == RequestStatus.DECIDED:
            record = self.record
            return "approved" if record and record.approved else "rejected"
        if self.status == RequestStatus.EXPIRED:
            return "expired"
        if self.run != self.execution.run:
            return f"closed (run {self.run} was replaced by run {self.execution.run})"
        if self.execution.is_finished:
            return f"closed (execution {self.execution.get_status_display().lower()})"
        return "pending"

    @property
    def record(self) -> ApprovalRecord | None:
        """The decision taken on this request, if any (no query when loaded by
        ``with_decisions``). Never a decision on another run's request, nor on an earlier
        execution that had the same id."""
        if ApprovalRequest.execution.is_cached(self):
            loaded = getattr(self.execution, PREFETCHED_DECISIONS, None)
            if loaded is not None:
                return next((r for r in loaded if r.decides(self)), None)
        linked = Q(request_id=self.pk) | Q(
            request_id__isnull=True, event=self.event, decided_at__gte=self.created_at
        )
        return ApprovalRecord.objects.filter(
            linked, execution_id=self.execution_id, run=self.run
        ).first()


class ApprovalRecordQuerySet(models.QuerySet["ApprovalRecord"]):
    """Records can be read and added, never changed or deleted, one by one or in bulk."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse("updated")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        _refuse("updated")

    def delete(self) -> NoReturn:
        _refuse("deleted")

    def bulk_create(
        self,
        objs: Any,
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> list[ApprovalRecord]:
        if update_conflicts:
            _refuse("updated")
        return super().bulk_create(
            objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields
        )


def _refuse(change: str) -> NoReturn:
    raise ValueError(f"an approval record is immutable: it cannot be {change}")


class ApprovalRecord(EngineModel):
    """The audit record of one decision. Written once by ``decide`` and never changed.

    It keeps the execution's id and its request's id even once they are deleted (no database
    constraint), so an id reused by a later execution never inherits its decision. Updates and
    deletes are refused by the instance, the queryset and, on PostgreSQL, a trigger.
    """

    execution = models.ForeignKey(
        Execution,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="approval_records",
    )
    request = models.ForeignKey(
        ApprovalRequest,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,  # the unique constraint indexes it
        null=True,
        blank=True,
        related_name="+",
        help_text="The request decided; empty on records written before version 0004.",
    )
    run = models.PositiveIntegerField(default=1, help_text="The run whose request it decided.")
    task_name = models.CharField(max_length=200)
    event = models.CharField(max_length=200)
    approved = models.BooleanField()
    reviewer = models.CharField(max_length=150, help_text="The deciding user's username.")
    reviewer_name = models.CharField(max_length=300, blank=True)
    comment = models.TextField(blank=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    decided_at = models.DateTimeField()

    objects = EngineManager.from_queryset(ApprovalRecordQuerySet)()

    class Meta:
        verbose_name = _("approval decision")
        verbose_name_plural = _("approval decisions")
        ordering = ["-decided_at"]
        constraints = [
            models.UniqueConstraint(fields=["request"], name="zart_decision_once_per_request")
        ]

    def __str__(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        return f"{self.execution_id}: {verdict} by {self.reviewer}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert the record; never an update, even of a record built with an existing id."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            _refuse("changed once written")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("deleted")

    def decides(self, request: ApprovalRequest) -> bool:
        """Whether this is the decision on ``request``. A record written before records named
        their request matches its execution and event, if made after the request was."""
        if self.request_id is not None:
            return self.request_id == request.pk
        return (
            self.execution_id == request.execution_id
            and self.run == request.run
            and self.event == request.event
            and self.decided_at >= request.created_at
        )

"""What approvals store: the requests executions make for a decision, and the immutable decisions.

Both models live in the ``zart_approvals`` app, on top of the core's ``Execution``.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models
from django.db.models import Exists, F, OuterRef, Prefetch, Q
from django.utils.translation import gettext_lazy as _

from zart_django.models import FINISHED_STATUSES, EngineManager, EngineModel, Execution

DEFAULT_PERMISSION = "zart_approvals.decide_approval"
REASSIGN_PERMISSION = "zart_approvals.reassign_approval"
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
        return self.of_current_runs().filter(status=RequestStatus.PENDING)

    def of_current_runs(self) -> ApprovalRequestQuerySet:
        """Requests asked by the current run of executions that have not finished, whatever their
        status (``open`` keeps the pending ones)."""
        return self.filter(run=F("execution__run")).exclude(execution__status__in=FINISHED_STATUSES)

    def closed(self) -> ApprovalRequestQuerySet:
        """Requests decided, expired, left undecided by an execution that ended, or by a run that a
        retry, rerun or restart replaced."""
        return self.filter(
            ~Q(status=RequestStatus.PENDING)
            | Q(execution__status__in=FINISHED_STATUSES)
            | ~Q(run=F("execution__run"))
        )

    def permitted_to(self, user: Any) -> ApprovalRequestQuerySet:
        """Requests ``user`` is an assignee of, decided by the database in the same query (see
        ``assignees.assigned_to``): for requests without assignees, those whose permission
        the user holds.

        Reads the tables of Django's ``ModelBackend``: an active superuser holds every
        permission, an active user those given directly or through a group; inactive and
        anonymous users none. Permissions granted only by a custom authentication backend are
        not seen here (``can_decide``, which calls ``has_perm``, stays the authority to decide).
        """
        if not (user.is_authenticated and user.is_active):
            return self.none()
        from .assignees import assigned_to

        return self.filter(assigned_to(user))

    def started_by(self, user: Any) -> ApprovalRequestQuerySet:
        """Requests of executions ``user`` started (``Execution.started_by``)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(execution__started_by=user.get_username())

    def decidable_by(self, user: Any) -> ApprovalRequestQuerySet:
        """Requests ``user`` is an assignee of and may vote on: not started by them (unless the
        request allows it) and not voted on by them already."""
        if not (user.is_authenticated and user.is_active):
            return self.none()
        username = user.get_username()
        voted = ApprovalRecord.objects.filter(request=OuterRef("pk"), reviewer=username)
        return (
            self.permitted_to(user)
            .filter(Q(allow_requester=True) | ~Q(execution__started_by=username))
            .exclude(Exists(voted))
        )

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
    assignees = models.JSONField(
        default=list,
        blank=True,
        help_text='Who may decide: "user:<username>", "group:<name>", "perm:<app.codename>",'
        ' "!user:<username>" (reassigned away); empty: everyone holding the permission.',
    )
    required = models.PositiveSmallIntegerField(
        default=1, help_text="How many approvals, by distinct people, approve it."
    )
    allow_requester = models.BooleanField(
        default=False, help_text="Whether the person who started the execution may decide it."
    )
    form = models.CharField(
        max_length=300, blank=True, help_text="The dotted path of the decision data's form."
    )
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
            ("decide_approval", _("Can approve or reject executions waiting for a person")),
            ("reassign_approval", _("Can reassign anyone's approval requests")),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "run", "event"], name="zart_approval_run_once"
            )
        ]
        indexes = [
            models.Index(fields=["status", "created_at"], name="zart_approval_status"),
            # The inbox's order (soonest deadline first, PostgreSQL's ASC putting the empty ones
            # last as the inbox does, then the newest), read by index; also the expiry sweep's.
            models.Index(
                fields=["status", "deadline", "-created_at", "-id"], name="zart_approval_inbox"
            ),
            # The history's order (newest first, the id as tie-break), read by index: its filter
            # (closed: an OR across the request and its execution) can use no index of its own.
            models.Index(fields=["created_at", "id"], name="zart_approval_newest"),
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
        """The decision taken on this request, if any: the vote that completed it (no query when
        loaded by ``with_decisions``). Never a decision on another run's request, nor on an
        earlier execution that had the same id."""
        votes = self.votes
        legacy = next((vote for vote in votes if vote.request_id is None), None)
        if legacy is not None:
            return legacy
        return votes[-1] if votes and self.status == RequestStatus.DECIDED else None

    @property
    def votes(self) -> list[ApprovalRecord]:
        """Every decision recorded on this request, oldest first (one per reviewer)."""
        if ApprovalRequest.execution.is_cached(self):
            loaded = getattr(self.execution, PREFETCHED_DECISIONS, None)
            if loaded is not None:
                return sorted(
                    (r for r in loaded if r.decides(self)), key=lambda r: (r.decided_at, r.pk)
                )
        linked = Q(request_id=self.pk) | Q(
            request_id__isnull=True, event=self.event, decided_at__gte=self.created_at
        )
        return list(
            ApprovalRecord.objects.filter(
                linked, execution_id=self.execution_id, run=self.run
            ).order_by("decided_at", "pk")
        )

    @property
    def approvals(self) -> int:
        """How many of the votes so far approve."""
        return sum(1 for vote in self.votes if vote.approved)

    @property
    def progress(self) -> str:
        """How far the votes got, in words, e.g. "1 of 2 approvals" (English: the API's and the
        log's; the pages say it in the active language)."""
        return f"{self.approvals} of {self.required} approvals"


class ImmutableQuerySet(models.QuerySet[Any]):
    """Rows can be read and added, never changed or deleted, one by one or in bulk."""

    def update(self, **kwargs: Any) -> NoReturn:
        _refuse(self.model, "updated")

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        _refuse(self.model, "updated")

    def delete(self) -> NoReturn:
        _refuse(self.model, "deleted")

    def bulk_create(
        self,
        objs: Any,
        batch_size: int | None = None,
        ignore_conflicts: bool = False,
        update_conflicts: bool = False,
        update_fields: Any = None,
        unique_fields: Any = None,
    ) -> list[Any]:
        if update_conflicts:
            _refuse(self.model, "updated")
        return super().bulk_create(
            objs, batch_size, ignore_conflicts, update_conflicts, update_fields, unique_fields
        )


def _refuse(model: type[models.Model], change: str) -> NoReturn:
    name = str(model._meta.verbose_name)
    article = "an" if name[:1] in "aeiou" else "a"
    raise ValueError(f"{article} {name} is immutable: it cannot be {change}")


class Immutable(EngineModel):
    """An audit row: inserted once, never updated or deleted (the instance, its queryset and,
    on PostgreSQL, a trigger refuse it)."""

    objects = EngineManager.from_queryset(ImmutableQuerySet)()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Insert the row; never an update, even of a row built with an existing id."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            _refuse(type(self), "changed once written")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse(type(self), "deleted")


class ApprovalRecord(Immutable):
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
    delegated_by = models.CharField(
        max_length=150, blank=True, help_text="Who reassigned the request to the reviewer."
    )
    data = models.JSONField(
        null=True, blank=True, help_text="The decision form's cleaned values, as JSON."
    )

    class Meta:
        verbose_name = _("approval decision")
        verbose_name_plural = _("approval decisions")
        ordering = ["-decided_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["request", "reviewer"], name="zart_decision_once_per_reviewer"
            )
        ]

    def __str__(self) -> str:
        verdict = "approved" if self.approved else "rejected"
        delegated = f" (delegated by {self.delegated_by})" if self.delegated_by else ""
        return f"{self.execution_id}: {verdict} by {self.reviewer}{delegated}"

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


class ApprovalAssignee(models.Model):
    """One of a request's ``assignees``, a row each, so a user's inbox is one query on both
    databases. Written only with the request's ``assignees`` (``assignees.assign``)."""

    request = models.ForeignKey(
        ApprovalRequest, on_delete=models.CASCADE, related_name="assignee_rows"
    )
    spec = models.CharField(max_length=300)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["request", "spec"], name="zart_assignee_once")
        ]
        indexes = [models.Index(fields=["spec"], name="zart_assignee_spec")]

    def __str__(self) -> str:
        return self.spec


class Reassignment(Immutable):
    """The audit entry of one reassignment: who handed the request to whom, and why."""

    execution = models.ForeignKey(
        Execution, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    request = models.ForeignKey(
        ApprovalRequest, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    event = models.CharField(max_length=200)
    reassigned_by = models.CharField(max_length=150, help_text="The reassigning user's username.")
    to = models.CharField(max_length=300, help_text='The new assignee, "user:<username>".')
    reason = models.TextField()
    assignees_before = models.JSONField(default=list)
    assignees_after = models.JSONField(default=list)
    reassigned_at = models.DateTimeField()

    class Meta:
        ordering = ["-reassigned_at"]

    def __str__(self) -> str:
        return f"{self.execution_id}: {self.reassigned_by} reassigned to {self.to}"

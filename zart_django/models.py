"""What the engine stores: executions, the results of their steps, the events offered to them, and
the runs of an execution that was retried, rerun or restarted (see ``zart_django.runs``)."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from django.db import models
from django.db.models import Q
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init

from . import conf


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
RETRYABLE_STATUSES = (Status.FAILED,)
"""The statuses ``DurableScheduler.retry`` continues an execution from."""
RERUNNABLE_STATUSES = tuple(status for status in Status if status != Status.RUNNING)
"""The statuses ``rerun`` and ``restart`` begin a new run from: any but running (a worker owns it)."""


class CompensationStatus(models.TextChoices):
    RUNNING = "running", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class EngineManager(models.Manager):
    """The default manager of the engine's models: its queries go to ``ZART["DATABASE"]`` (or to
    the alias a caller chose with ``using``/``db_manager``). Related managers derive from it."""

    def get_queryset(self) -> models.QuerySet:
        return self._queryset_class(
            model=self.model, using=self._db or conf.database(), hints=self._hints
        )


class EngineModel(models.Model):
    """A model of the engine: read and written on ``ZART["DATABASE"]``, by its manager and by
    ``save`` (a row loaded elsewhere is saved where it was loaded)."""

    objects = EngineManager()

    class Meta:
        abstract = True

    def save(self, *args: Any, using: str | None = None, **kwargs: Any) -> None:
        super().save(*args, using=using or self._state.db or conf.database(), **kwargs)


class Execution(EngineModel):
    """One run of a durable task.

    ``scheduled_at`` is when a worker should next look at it: the due time while pending or waiting
    (empty while waiting with no deadline), the lease's expiry while running. ``run`` numbers the
    current run (1 until a retry, rerun or restart begins another); the fields describe that run.
    ``blocked_at`` is when replay last found that its code no longer matches its history (the
    database's clock). ``compensation_status`` and ``compensation`` are those of the task's
    ``on_failure`` handler, once a failure began it (see ``zart_django.compensation``).
    ``parent`` is the execution that started it as a child (``start_child``); deleting the parent
    keeps the child, without a parent.
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
    run = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    blocked_at = models.DateTimeField(null=True, blank=True)
    compensation_status = models.CharField(
        max_length=16, choices=CompensationStatus.choices, blank=True, default="", db_default=""
    )
    compensation = models.JSONField(null=True, blank=True)
    started_by = models.CharField(
        max_length=150,
        blank=True,
        default="",
        db_default="",
        help_text="The username of who started it; empty when code started it.",
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        help_text="The execution that started it with start_child; empty for a top-level one.",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["scheduled_at"],
                name="zart_execution_due",
                condition=Q(status__in=["pending", "running", "waiting"]),
            ),
            models.Index(fields=["status", "task_name"], name="zart_execution_status"),
            # The lists' default order (newest first, the id as tie-break), read by index.
            models.Index(fields=["created_at", "id"], name="zart_execution_newest"),
            models.Index(
                fields=["finished_at"],
                name="zart_execution_finished",
                condition=Q(status__in=["completed", "failed", "cancelled", "timed_out"]),
            ),
        ]

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


UNCLAIMED_SHOWN_AFTER = timedelta(minutes=1)
"""How long an execution is due with no worker claiming it before the admin and ``zart list``
say so: a running worker with its task's code claims it within a poll interval."""


class StepKind(models.TextChoices):
    STEP = "step", "Step"
    EVENT = "event", "Event wait"
    SLEEP = "sleep", "Sleep"
    PATCH = "patch", "Patch marker"
    VALUE = "value", "Recorded value"
    ANY = "any", "Wait for any event"


ANY_SEPARATOR = "|"
"""Joins the event names of a wait for the first of several (``wait_for_any``) into its row's
name and the execution's ``waiting_on``: no event name can contain it."""


class StepStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    RETRYING = "retrying", "Retrying"
    WAITING = "waiting", "Waiting"
    TIMED_OUT = "timed_out", "Timed out"


class StepResult(EngineModel):
    """The checkpoint of one step, wait or sleep, at its position in one run of the execution.

    ``execution`` has no index of its own (nor, on PostgreSQL, its ``LIKE`` twin): the unique
    constraint's index begins with it and serves every lookup by execution, and each checkpoint
    writes two index entries fewer (a quarter less write-ahead log a step). So for ``Event``
    and ``Run``."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    run = models.PositiveIntegerField(default=1)
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
    parallel_group = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="For a member of a parallel() group: the position of the group's first member.",
    )

    class Meta:
        ordering = ["execution", "run", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "run", "position"], name="zart_step_run_position"
            )
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} #{self.position} {self.name} ({self.status})"

    @property
    def awaited(self) -> list[str]:
        """The events this row waits for: an event wait's one, a wait for any of several's
        names; none for a step, sleep, patch marker or value."""
        if self.kind == StepKind.EVENT:
            return [self.name]
        if self.kind == StepKind.ANY:
            return self.name.split(ANY_SEPARATOR)
        return []


def new_step_row(
    execution_id: str,
    run: int,
    position: int,
    name: str,
    kind: str,
    started_at: datetime,
    heard: bool | None = None,
) -> StepResult:
    """A new, unsaved ``StepResult`` with the other fields at their defaults: what
    ``StepResult(...)`` makes, its fields set straight in the instance's ``__dict__`` (the
    constructor sets them one at a time, a step's largest cost after its checkpoint). While a
    receiver listens to ``pre_init`` or ``post_init`` for it, the constructor builds it, so
    they hear of it. ``heard``: whether one listens, if the caller asked ``step_rows_heard``
    already (a run asks once as it begins: the two questions cost a step 3 µs)."""
    values = {
        **_step_defaults(),
        "execution_id": execution_id,
        "run": run,
        "position": position,
        "name": name,
        "kind": kind,
        "started_at": started_at,
    }
    if step_rows_heard() if heard is None else heard:
        return StepResult(**values)
    row = StepResult.__new__(StepResult)
    row._state = ModelState()
    row.__dict__.update(values)
    return row


def step_rows_heard() -> bool:
    """Whether a receiver listens to ``pre_init`` or ``post_init`` for ``StepResult``."""
    return pre_init.has_listeners(StepResult) or post_init.has_listeners(StepResult)


@functools.cache
def _step_defaults() -> dict[str, Any]:
    """Each field's default by its attribute name (none is a callable's fresh value)."""
    return {field.attname: field.get_default() for field in StepResult._meta.concrete_fields}


class Event(EngineModel):
    """A payload offered to one run of an execution under a name; that run's wait consumes it."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="events", db_index=False
    )
    run = models.PositiveIntegerField(default=1)
    name = models.CharField(max_length=200)
    payload = models.JSONField(null=True)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "run", "name"], name="zart_event_run_once")
        ]

    def __str__(self) -> str:
        return f"{self.name} -> {self.execution_id}"


class RunStart(models.TextChoices):
    START = "start", "Start"
    RETRY = "retry", "Retry"
    RERUN = "rerun", "Rerun"
    RESTART = "restart", "Restart"


class Run(EngineModel):
    """One run of an execution that was retried, rerun or restarted: how it began, and how it ended
    once a later run replaced it (``status`` is empty while it is the current run). Written when
    the next run begins; an execution that ran once has none."""

    execution = models.ForeignKey(
        Execution, on_delete=models.CASCADE, related_name="runs", db_index=False
    )
    number = models.PositiveIntegerField()
    began = models.CharField(max_length=8, choices=RunStart.choices)
    from_step = models.CharField(max_length=200, blank=True)
    input = models.JSONField(null=True)
    started_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["execution", "number"]
        constraints = [
            models.UniqueConstraint(fields=["execution", "number"], name="zart_run_number")
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} run {self.number} ({self.began})"


class WorkerSeen(EngineModel):
    """When a worker (or django-q2 cluster) on ``host`` last looked for work: at most one write
    a host per ``store.SEEN_EVERY`` seconds, so the inbox can say whether one runs at all."""

    host = models.CharField(primary_key=True, max_length=200)
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.host} at {self.seen_at:%Y-%m-%d %H:%M:%S}"


class Overlap(models.TextChoices):
    """What a schedule's tick does while its previous occurrence is unfinished."""

    SKIP = "skip", "Skip the tick"
    QUEUE = "queue", "Start it once the previous one finishes"
    ALLOW = "allow", "Start it anyway"


class Schedule(EngineModel):
    """A recurring task's schedule, synced from the code by each worker as it starts: a cron
    expression (``cron``, read in ``timezone``) or a period (``every``). ``next_run_at`` is its
    next tick (the database's clock); ``last_occurrence`` the id of the last execution it started.
    ``active`` is False once the code has the task without a schedule; ``paused`` is set from
    the admin or ``zart schedules pause``."""

    task_name = models.CharField(primary_key=True, max_length=200)
    cron = models.CharField(max_length=200, blank=True)
    every = models.DurationField(null=True, blank=True)
    timezone = models.CharField(max_length=64)
    overlap = models.CharField(max_length=8, choices=Overlap.choices, default=Overlap.SKIP)
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_occurrence = models.CharField(max_length=200, blank=True)
    last_run_at = models.DateTimeField(null=True, blank=True)
    paused = models.BooleanField(default=False)
    active = models.BooleanField(default=True)
    updated_at = models.DateTimeField()

    class Meta:
        ordering = ["task_name"]
        indexes = [models.Index(fields=["next_run_at"], name="zart_schedule_due")]

    def __str__(self) -> str:
        return self.task_name

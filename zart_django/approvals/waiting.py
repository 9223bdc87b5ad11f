"""``wait_for_approval``: a durable function asks a person to decide, and parks until they do."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from django.forms import BaseForm, Form
from django.utils.module_loading import import_string

from zart_django import (
    DurableScheduler,
    Duration,
    EventTimeout,
    RetryPolicy,
    StepFailed,
    current_execution_id,
    step,
    wait_for_event,
)
from zart_django.clock import now
from zart_django.codec import decode
from zart_django.durations import parse_duration
from zart_django.replay import awaitable_in_async, wait_recorded
from zart_django.reserved import reserve
from zart_django.signals import send
from zart_django.store import atomic, engine_io, load_execution

from . import notifications
from .assignees import Assignees, assign, effective, resolve
from .decision import ApprovalDecision
from .models import DEFAULT_PERMISSION, ApprovalRequest, RequestStatus
from .signals import approval_requested

logger = logging.getLogger("zart_django")

DEFAULT_EVENT = "manager-approval"
NAMESPACE = "approval:"


def decision_event(event: str) -> str:
    """The reserved event name an approval's wait listens on: only ``decide`` delivers to it."""
    return NAMESPACE + event


RESERVED = (
    "it is an approval: decide it with zart_django.approvals.decide"
    " (POST /api/approvals/<execution id>/decide/, the inbox or the admin)"
)


def reserve_decision_events() -> None:
    """Make ``offer_event`` refuse every approval's event name, whoever sends it and whenever."""
    reserve(NAMESPACE, RESERVED)


def api_refusal(execution_id: str, name: str) -> str | None:
    """Why the API's events endpoint refuses ``name``, naming the decide endpoint: it is an
    approval's reserved name, or the event of one of the execution's approval requests."""
    decide_at = f"decide it with POST /api/approvals/{execution_id}/decide/"
    if name.startswith(NAMESPACE):
        return f"event {name!r} cannot be offered: {RESERVED}; {decide_at}"
    if ApprovalRequest.objects.filter(execution_id=execution_id, event=name).exists():
        return f"event {name!r} of execution {execution_id!r} is an approval: {decide_at}"
    return None


@awaitable_in_async
def wait_for_approval(
    event: str = DEFAULT_EVENT,
    timeout: Duration | None = None,
    permission: str | None = None,
    title: str | None = None,
    summary: str | None = None,
    assignees: Assignees | None = None,
    required: int = 1,
    allow_requester: bool = False,
    form: type[Form] | None = None,
    remind_every: Duration | None = None,
    escalate_after: Duration | None = None,
    escalate_to: Iterable[str] = (),
) -> ApprovalDecision:
    """Ask for a decision and return it once a person with ``permission`` approves or rejects.

    Inside a durable function: records an approval request for this execution and ``event``
    when the wait is first reached in a run (replays, and a retry or rerun that keeps the decided
    wait, ask nothing; a rerun from before it asks again), which puts it in the inbox of every user holding ``permission``
    (default ``zart_approvals.decide_approval``) and emails them (step ``approval-opened``; a
    rerun from the wait itself keeps that step, so it asks again without a mail), then
    waits for the decision on the reserved event name ``approval:<event>``, to which only
    ``decide`` can deliver (``offer_event`` refuses it).
    ``title`` and ``summary`` are shown to the reviewer; by default they name the task and list
    the execution's input. Past ``timeout`` the request expires and ``EventTimeout`` is raised
    here; a decision and the expiry are serialized, so a decision accepted is one this returns.

    ``assignees`` (users, groups, permissions, as objects or ``"alice"``, ``"group:finance"``,
    ``"perm:expenses.approve"``, or a callable computing them from the execution's input) are
    who may decide, instead of everyone holding ``permission``; they are resolved once, when the
    request is made. ``required`` approvals by distinct people approve it; the first rejection
    rejects it. The person who started the execution may not decide it unless
    ``allow_requester``. ``form``, an importable Django form class, asks the reviewer for
    decision data, validated and returned as ``ApprovalDecision.data``.

    Timers count from the request's creation (stored, so a restart does not restart them): every
    ``remind_every`` the deciders are reminded by email (steps ``approval-reminder-1``, ``-2``...),
    and once ``escalate_after`` has passed the usernames ``escalate_to`` join the request's
    assignees and everyone is told (step ``approval-escalation``); neither expires the request.

    In an ``async def`` durable function it is awaited: ``await wait_for_approval(...)``.
    """
    execution_id = current_execution_id()
    if execution_id is None:
        raise RuntimeError(
            "wait_for_approval can only be called inside a durable function run by a worker"
            " (or by zart_django.testing.run_until_idle in tests)"
        )
    timers = Timers.given(remind_every, escalate_after, escalate_to)
    if not wait_recorded(decision_event(event)):
        expires = None if timeout is None else parse_duration(timeout).total_seconds()
        rules = Rules(assignees, _checked_required(required), allow_requester, _form_path(form))
        asked = Asked(execution_id, event, permission, title, summary, rules, expires)
        _notify("approval-opened", _open, asked)
        if not wait_recorded(decision_event(event)):  # a rerun from the wait kept that step
            _ensure_request(asked)
    request = _latest_request(execution_id, event)
    if request is not None and request.deadline is not None:
        timeout = request.deadline - now()
    decision = _remind_and_escalate(request, timers) if request is not None else None
    if decision is not None:
        return decision
    try:
        return wait_for_event(decision_event(event), timeout=timeout, type=ApprovalDecision)
    except EventTimeout:
        _expire(execution_id, event)
        raise


NOTIFY_RETRY = RetryPolicy.exponential(3, "30s")


@dataclass(frozen=True)
class Timers:
    """The reminder period, and when (after the request opens) to escalate and to whom."""

    remind_every: timedelta | None
    escalate_after: timedelta | None
    escalate_to: tuple[str, ...]

    @classmethod
    def given(
        cls,
        remind_every: Duration | None,
        escalate_after: Duration | None,
        escalate_to: Iterable[str],
    ) -> Timers:
        """Check the arguments of ``wait_for_approval``: positive durations, and ``escalate_to``
        (usernames) exactly when ``escalate_after`` is given. Raises ``ValueError``."""
        every = None if remind_every is None else parse_duration(remind_every)
        after = None if escalate_after is None else parse_duration(escalate_after)
        names = (escalate_to,) if isinstance(escalate_to, str) else tuple(escalate_to)
        for name, value in (("remind_every", every), ("escalate_after", after)):
            if value is not None and value <= timedelta(0):
                raise ValueError(f"{name} must be a positive duration, not {value}")
        if (after is None) != (not names):
            raise ValueError("escalate_after and escalate_to (usernames) go together")
        return cls(every, after, names)

    def next(self, opened: datetime, reminded: int, escalated: bool) -> tuple[datetime, bool]:
        """When the next timer fires and whether it is the escalation (first on a tie), given
        how many reminders were sent; far in the future if none is left."""
        times = []
        if not escalated and self.escalate_after is not None:
            times.append((opened + self.escalate_after, True))
        if self.remind_every is not None:
            times.append((opened + self.remind_every * (reminded + 1), False))
        return min(times, key=lambda t: (t[0], not t[1])) if times else (datetime.max, False)


def _remind_and_escalate(request: ApprovalRequest, timers: Timers) -> ApprovalDecision | None:
    """Wait for the decision until each timer that fires before the deadline, running its step
    when it fires; return the decision if it came meanwhile, else None once no timer is left."""
    reminded, escalated = 0, False
    while True:
        at, escalation = timers.next(request.created_at, reminded, escalated)
        if at == datetime.max or (request.deadline is not None and at >= request.deadline):
            return None
        try:
            return wait_for_event(decision_event(request.event), type=ApprovalDecision, wake_at=at)
        except EventTimeout:
            pass
        if escalation:
            escalated = True
            _notify("approval-escalation", _escalate, request.pk, list(timers.escalate_to))
        else:
            reminded += 1
            _notify(f"approval-reminder-{reminded}", _remind, request.pk, reminded)


def _notify(name: str, body: Any, *args: Any) -> None:
    """Run ``body`` as the durable step ``name``; a mail that still fails after its retries is
    logged, and the approval goes on waiting."""
    try:
        step(name, retry=NOTIFY_RETRY)(body)(*args)
    except StepFailed as exc:
        logger.error("approval notification %s failed: %s", name, exc)


@engine_io
def _expire(execution_id: str, event: str) -> None:
    ApprovalRequest.objects.filter(
        execution_id=execution_id,
        event=event,
        status=RequestStatus.PENDING,
        run=load_execution(execution_id).run,
    ).update(status=RequestStatus.EXPIRED, closed_at=now())


def _open(asked: Asked) -> int:
    """The body of step ``approval-opened``: create the request, email those who may decide it;
    return how many mails were sent."""
    return notifications.notify_opened(_ensure_request(asked))


def _remind(request_pk: int, number: int) -> int:
    """The body of step ``approval-reminder-<number>``."""
    return notifications.notify_reminder(ApprovalRequest.objects.get(pk=request_pk), number)


def _escalate(request_pk: int, usernames: list[str]) -> int:
    """The body of step ``approval-escalation``: add ``usernames`` to the request's assignees
    (and ``escalated_to``, which names them) and tell everyone who may now decide it."""
    request = ApprovalRequest.objects.get(pk=request_pk)
    with atomic():
        request.escalated_to = sorted({*request.escalated_to, *usernames})
        request.save(update_fields=["escalated_to"])
        added = [f"user:{name}" for name in usernames]
        assign(request, list(dict.fromkeys([*effective(request), *added])))
    logger.info(
        "execution %s: approval %s escalated to %s",
        request.execution_id,
        request.event,
        ", ".join(request.escalated_to),
    )
    return notifications.notify_escalated(request)


@engine_io
def _latest_request(execution_id: str, event: str) -> ApprovalRequest | None:
    """The request of the latest run that asked (a retry keeps the decided wait, not the run)."""
    return (
        ApprovalRequest.objects.filter(execution_id=execution_id, event=event)
        .order_by("-run", "-pk")
        .first()
    )


@dataclass(frozen=True)
class Rules:
    """Who may decide a request and how, as ``wait_for_approval`` was told."""

    assignees: Assignees | None
    required: int
    allow_requester: bool
    form: str


@dataclass(frozen=True)
class Asked:
    """What ``wait_for_approval`` asks: its request's fields before it is stored (``expires``:
    seconds from its creation to its deadline)."""

    execution_id: str
    event: str
    permission: str | None
    title: str | None
    summary: str | None
    rules: Rules
    expires: float | None


def _checked_required(required: int) -> int:
    if isinstance(required, bool) or not isinstance(required, int) or required < 1:
        raise ValueError(
            f"wait_for_approval(required=...) is a number of approvals, not {required!r}"
        )
    return required


def _form_path(form: type[Form] | None) -> str:
    """The dotted path of ``form``; ``ValueError`` unless it imports back as that form class."""
    if form is None:
        return ""
    path = f"{getattr(form, '__module__', '')}.{getattr(form, '__qualname__', '')}"
    try:
        importable = import_string(path) is form
    except ImportError:
        importable = False
    if not (importable and isinstance(form, type) and issubclass(form, BaseForm)):
        raise ValueError(
            f"wait_for_approval(form=...) takes a Django form class importable by its dotted"
            f" path (defined at a module's top level), not {form!r}"
        )
    return path


def _ensure_request(asked: Asked) -> ApprovalRequest:
    """The request of this run, created the first time its wait is reached with its assignees
    (a step retried after a crash finds it and changes nothing)."""
    scheduler = DurableScheduler()
    info = scheduler.get(asked.execution_id)
    existing = ApprovalRequest.objects.filter(
        execution_id=asked.execution_id, run=info.run, event=asked.event
    )
    if existing.exists():
        return existing.get()
    created_at = now()
    rules = asked.rules
    request = ApprovalRequest(
        execution_id=asked.execution_id,
        run=info.run,
        event=asked.event,
        title=(asked.title or f"{info.task} {asked.execution_id}")[:300],
        summary=asked.summary
        if asked.summary is not None
        else describe(info.input, field_order(scheduler, info.task)),
        permission=asked.permission or DEFAULT_PERMISSION,
        required=rules.required,
        allow_requester=rules.allow_requester,
        form=rules.form,
        created_at=created_at,
        deadline=None if asked.expires is None else created_at + timedelta(seconds=asked.expires),
    )
    specs = None
    if rules.assignees is not None:
        specs = resolve(rules.assignees, _typed_input(scheduler, info.task, info.input))
    with atomic():
        ApprovalRequest.objects.bulk_create([request], ignore_conflicts=True)
        if specs is not None:
            assign(existing.get(), specs)
    logger.info(
        "execution %s: approval %s requested (permission %s)",
        asked.execution_id,
        asked.event,
        request.permission,
    )
    send(
        approval_requested,
        execution_id=asked.execution_id,
        task_name=info.task,
        event=asked.event,
        permission=request.permission,
        title=request.title,
    )
    return existing.get()


def describe(value: Any, order: list[str] | None = None) -> str:
    """A readable rendering of an execution's input: one ``key: value`` line per field, in
    ``order`` (the input type's field order) and then sorted, since PostgreSQL does not keep the
    order of JSON keys."""
    if isinstance(value, dict):
        rank = {name: n for n, name in enumerate(order or [])}
        keys = sorted(value, key=lambda k: (rank.get(k, len(rank)), k))
        return "\n".join(f"{key.replace('_', ' ')}: {describe(value[key])}" for key in keys)
    if isinstance(value, list):
        return ", ".join(describe(item) for item in value)
    return "" if value is None else str(value)


def _typed_input(scheduler: DurableScheduler, task_name: str, data: Any) -> Any:
    """The execution's input rebuilt into its task's input type, for callable assignees."""
    if task_name not in scheduler.registry:
        return data
    return decode(data, scheduler.registry.get(task_name).input_type, "input")


def field_order(scheduler: DurableScheduler, task_name: str) -> list[str]:
    """The input type's field names in declaration order, if it is a dataclass."""
    if task_name not in scheduler.registry:
        return []
    input_type = scheduler.registry.get(task_name).input_type
    return [f.name for f in fields(input_type)] if is_dataclass(input_type) else []

"""``wait_for_approval``: a durable function asks a person to decide, and parks until they do."""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any

from django.forms import BaseForm, Form
from django.utils.module_loading import import_string

from zart_django import (
    DurableScheduler,
    Duration,
    EventTimeout,
    current_execution_id,
    wait_for_event,
)
from zart_django.clock import now
from zart_django.codec import decode
from zart_django.durations import parse_duration
from zart_django.replay import wait_recorded
from zart_django.reserved import reserve
from zart_django.signals import send
from zart_django.store import atomic, engine_io, load_execution

from .assignees import Assignees, assign, resolve
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
) -> ApprovalDecision:
    """Ask for a decision and return it once a person with ``permission`` approves or rejects.

    Inside a durable function: records an approval request for this execution and ``event``
    when the wait is first reached in a run (replays, and a retry or rerun that keeps the decided
    wait, ask nothing; a rerun from before it asks again), which puts it in the inbox of every user holding ``permission``
    (default ``zart_approvals.decide_approval``), then waits for the decision on the reserved event
    name ``approval:<event>``, to which only ``decide`` can deliver (``offer_event`` refuses it).
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
    """
    execution_id = current_execution_id()
    if execution_id is None:
        raise RuntimeError(
            "wait_for_approval can only be called inside a durable function run by a worker"
            " (or by zart_django.testing.run_until_idle in tests)"
        )
    if not wait_recorded(decision_event(event)):
        deadline = now() + parse_duration(timeout) if timeout is not None else None
        rules = Rules(assignees, _checked_required(required), allow_requester, _form_path(form))
        _ensure_request(execution_id, event, permission, title, summary, rules, deadline)
    try:
        return wait_for_event(decision_event(event), timeout=timeout, type=ApprovalDecision)
    except EventTimeout:
        _expire(execution_id, event)
        raise


@engine_io
def _expire(execution_id: str, event: str) -> None:
    ApprovalRequest.objects.filter(
        execution_id=execution_id,
        event=event,
        status=RequestStatus.PENDING,
        run=load_execution(execution_id).run,
    ).update(status=RequestStatus.EXPIRED, closed_at=now())


@dataclass(frozen=True)
class Rules:
    """Who may decide a request and how, as ``wait_for_approval`` was told."""

    assignees: Assignees | None
    required: int
    allow_requester: bool
    form: str


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


@engine_io
def _ensure_request(
    execution_id: str,
    event: str,
    permission: str | None,
    title: str | None,
    summary: str | None,
    rules: Rules,
    deadline: datetime | None,
) -> None:
    """Create the request of this run the first time its wait is reached (a replay after a crash
    that came before the wait was recorded finds it and changes nothing). ``deadline`` is now +
    the timeout, as the wait computes the deadline it records a moment later."""
    scheduler = DurableScheduler()
    info = scheduler.get(execution_id)
    if ApprovalRequest.objects.filter(
        execution_id=execution_id, run=info.run, event=event
    ).exists():
        return
    request = ApprovalRequest(
        execution_id=execution_id,
        run=info.run,
        event=event,
        title=(title or f"{info.task} {execution_id}")[:300],
        summary=summary
        if summary is not None
        else describe(info.input, field_order(scheduler, info.task)),
        permission=permission or DEFAULT_PERMISSION,
        required=rules.required,
        allow_requester=rules.allow_requester,
        form=rules.form,
        created_at=now(),
        deadline=deadline,
    )
    specs = None
    if rules.assignees is not None:
        specs = resolve(rules.assignees, _typed_input(scheduler, info.task, info.input))
    with atomic():
        ApprovalRequest.objects.bulk_create([request], ignore_conflicts=True)
        if specs is not None:
            assign(
                ApprovalRequest.objects.get(execution_id=execution_id, run=info.run, event=event),
                specs,
            )
    logger.info(
        "execution %s: approval %s requested (permission %s)",
        execution_id,
        event,
        request.permission,
    )
    send(
        approval_requested,
        execution_id=execution_id,
        task_name=info.task,
        event=event,
        permission=request.permission,
        title=request.title,
    )


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

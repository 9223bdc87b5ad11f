"""Email to the people who may decide a request: when it opens, is reminded, escalated, reassigned.

Each kind renders three templates a project can override: ``zart_approvals/email/<kind>_subject.txt``,
``<kind>.txt`` and ``<kind>.html`` (kinds: opened, reminder, escalated, reassigned). Every message
goes to one recipient, with a link to the request in the inbox (absolute with
``ZART["APPROVALS_BASE_URL"]``) and its deadline. ``ZART["APPROVALS_EMAIL"] = False`` sends none.
``wait_for_approval`` sends inside durable steps: a step that finished is not repeated, but a worker
killed after sending and before its checkpoint sends again on recovery (at least once).
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives, get_connection
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse

from zart_django import conf

from . import assignees
from .models import ApprovalRequest

logger = logging.getLogger("zart_django")

OPENED, REMINDER, ESCALATED, REASSIGNED = "opened", "reminder", "escalated", "reassigned"


def recipients(request: ApprovalRequest) -> list[Any]:
    """Who is told about ``request``: the active users who may decide it, its assignees
    (those it was escalated to included) as ``assignees.recipients`` finds them."""
    return assignees.recipients(request)


def notify_opened(request: ApprovalRequest) -> int:
    """Tell everyone who may decide ``request`` that it waits for them; return the mails sent."""
    return send(request, OPENED, recipients(request))


def notify_reminder(request: ApprovalRequest, number: int) -> int:
    """Remind everyone who may decide ``request`` (the ``number``-th reminder)."""
    return send(request, REMINDER, recipients(request), number=number)


def notify_escalated(request: ApprovalRequest) -> int:
    """Tell everyone who may decide ``request``, those it was escalated to included, that it was
    escalated."""
    return send(request, ESCALATED, recipients(request), escalated_to=request.escalated_to)


def notify_reassigned(request: ApprovalRequest, from_user: Any, to_user: Any, reason: str) -> int:
    """Tell ``to_user`` that ``request`` was handed to them by ``from_user``, for ``reason``."""
    return send(request, REASSIGNED, [to_user], from_user=from_user, reason=reason)


def on_reassigned(
    request: ApprovalRequest, reassigned_by: str, to: str, reason: str, **kwargs: Any
) -> None:
    """The ``approval_reassigned`` receiver: mail the user the request was handed to."""
    users = get_user_model().objects
    by_name = {
        u.get_username(): u
        for u in users.filter(
            **{f"{users.model.USERNAME_FIELD}__in": [reassigned_by, to.removeprefix("user:")]}
        )
    }
    delegate = by_name.get(to.removeprefix("user:"))
    if delegate is not None:
        notify_reassigned(request, by_name.get(reassigned_by, reassigned_by), delegate, reason)


def send(request: ApprovalRequest, kind: str, users: list[Any], **extra: Any) -> int:
    """Email ``kind`` about ``request`` to each of ``users`` who has an address (the others are
    logged and skipped); return how many were sent. Raises what the mail backend raises."""
    if not conf.get("APPROVALS_EMAIL"):
        return 0
    context = {"request": request, "link": link(request), "deadline": request.deadline, **extra}
    messages = []
    for user in users:
        if not user.email:
            logger.warning(
                "approval %s of %s: %s has no email address, not notified",
                request.event,
                request.execution_id,
                user.get_username(),
            )
            continue
        messages.append(_message(kind, {**context, "user": user}, user.email, request))
    if not messages:
        return 0
    return get_connection().send_messages(messages) or 0


def _message(
    kind: str, context: dict[str, Any], address: str, request: ApprovalRequest
) -> EmailMultiAlternatives:
    folder = "zart_approvals/email"
    subject = " ".join(render_to_string(f"{folder}/{kind}_subject.txt", context).split())
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"{folder}/{kind}.txt", context),
        to=[address],
        headers={"X-Zart-Execution": request.execution_id, "X-Zart-Notice": _notice(kind, context)},
    )
    message.attach_alternative(render_to_string(f"{folder}/{kind}.html", context), "text/html")
    return message


def _notice(kind: str, context: dict[str, Any]) -> str:
    number = context.get("number")
    return f"{kind}-{number}" if number else kind


def link(request: ApprovalRequest) -> str:
    """The request's page in the inbox, absolute with ``ZART["APPROVALS_BASE_URL"]``; empty when
    the project does not include ``zart_django.approvals.urls``."""
    try:
        path = reverse("zart_approvals:detail", args=[request.execution_id])
    except NoReverseMatch:
        return ""
    return str(conf.get("APPROVALS_BASE_URL")).rstrip("/") + path

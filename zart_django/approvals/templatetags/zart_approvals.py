"""Template tags of the inbox: ``{% load zart_approvals %}``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from zart_django.clock import now
from zart_django.counting import bounded_count
from zart_django.models import Status

from ..models import ApprovalRequest, RequestStatus
from ..services import decidable_by

register = template.Library()

SOON = timedelta(hours=1)
"""A deadline closer than this is marked ``soon``."""
ENDINGS = {
    Status.COMPLETED: gettext_lazy("completed"),
    Status.FAILED: gettext_lazy("failed"),
    Status.CANCELLED: gettext_lazy("cancelled"),
    Status.TIMED_OUT: gettext_lazy("timed out"),
}
"""How an execution ended, in words, for "closed (execution cancelled)"."""


OPEN_COUNT_BOUND = 99
"""The header counts a user's open requests up to this many, then says "99+"."""


@dataclass(frozen=True)
class Waiting:
    """How many open requests wait for a user: ``number``, and ``more`` if there are more."""

    number: int
    more: bool

    def __str__(self) -> str:
        return f"{self.number}+" if self.more else str(self.number)

    def __bool__(self) -> bool:
        return self.number > 0


@register.simple_tag
def open_count(user: Any) -> Waiting | None:
    """How many open requests ``user`` may decide, up to ``OPEN_COUNT_BOUND`` (one query that
    reads at most one more), None for an anonymous visitor."""
    if not user.is_authenticated:
        return None
    counted = bounded_count(decidable_by(user), OPEN_COUNT_BOUND + 1)
    return Waiting(min(counted, OPEN_COUNT_BOUND), counted > OPEN_COUNT_BOUND)


@register.simple_tag
def expiry(deadline: datetime | None) -> SafeString | str:
    """The deadline in words, "expires in 3 h" or "overdue" (class ``overdue``), with the time
    itself as the tooltip; nothing for a request without a deadline."""
    if deadline is None:
        return ""
    left = deadline - now()
    at = localtime(deadline).strftime("%Y-%m-%d %H:%M")
    if left <= timedelta(0):
        return format_html('<span class="expiry overdue" title="{}">{}</span>', at, _("overdue"))
    css = "expiry soon" if left < SOON else "expiry"
    text = _("expires in %(time)s") % {"time": short_duration(left)}
    return format_html('<span class="{}" title="{}">{}</span>', css, at, text)


def short_duration(span: timedelta) -> str:
    """``span`` rounded down to its largest unit: "2 d" from two days, "3 h", "5 min"."""
    seconds = int(span.total_seconds())
    if seconds >= 2 * 86400:
        return _("%(count)d d") % {"count": seconds // 86400}
    if seconds >= 3600:
        return _("%(count)d h") % {"count": seconds // 3600}
    return _("%(count)d min") % {"count": max(1, seconds // 60)}


@register.filter
def outcome_key(approval: ApprovalRequest) -> str:
    """The outcome's one word, for a CSS class: approved, rejected, expired, closed, pending."""
    return approval.outcome.split(" ")[0]


@register.filter
def outcome_label(approval: ApprovalRequest) -> str:
    """``approval.outcome`` in the active language."""
    if approval.status == RequestStatus.DECIDED:
        return _("approved") if outcome_key(approval) == "approved" else _("rejected")
    if approval.status == RequestStatus.EXPIRED:
        return _("expired")
    execution = approval.execution
    if approval.run != execution.run:
        return _("closed (run %(run)s was replaced by run %(current)s)") % {
            "run": approval.run,
            "current": execution.run,
        }
    if execution.is_finished:
        return _("closed (execution %(status)s)") % {"status": ENDINGS[execution.status]}
    return _("pending")

"""A recurring task of the demo: a nightly digest of the day's approval decisions, at 02:00 in
Berlin. The demo's settings list this module in ``ZART["WORKFLOW_MODULES"]``, so its worker
syncs the schedule (``manage.py zart schedules`` lists it); it starts nothing during
``make demo`` unless that runs at 02:00 Berlin time."""

from __future__ import annotations

from datetime import datetime, timedelta

from zart_django import durable, step
from zart_django.approvals.models import ApprovalRecord


@step("count-decisions")
def count_decisions(since: datetime, until: datetime) -> dict[str, int]:
    decided = ApprovalRecord.objects.filter(decided_at__gte=since, decided_at__lt=until)
    return {
        "approved": decided.filter(approved=True).count(),
        "rejected": decided.filter(approved=False).count(),
    }


@durable("nightly-digest", schedule="0 2 * * *", timezone="Europe/Berlin", overlap="skip")
def nightly_digest(at: datetime) -> dict:
    """The decisions of the 24 hours before this occurrence's tick (``at``, 02:00 Berlin)."""
    counts = count_decisions(at - timedelta(days=1), at)
    return {"day": (at - timedelta(days=1)).date().isoformat(), **counts}

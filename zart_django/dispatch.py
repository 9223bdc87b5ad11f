"""Running due executions as django-q2 tasks, with ``ZART = {"DISPATCH": "django_q"}``.

Whenever work becomes due (a start, an event, a retry), a django-q2 task ``run_due`` is enqueued
once the transaction commits; it claims and runs due executions inside the cluster's worker with
the same leases, heartbeats and checks as ``run_zart_worker``. A schedule runs it every minute too,
for deadlines, retry delays and executions whose worker died, and each cluster worker runs it
when it starts.

The wake-up is best effort: the work is committed before it is enqueued, so a broker that is down
costs a warning, not an error for the caller; the schedule (or any later wake-up) runs the work.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction

from .logs import ensure_output

logger = logging.getLogger("zart_django")
SCHEDULE_NAME = "zart_django: run due executions"
TASK = "zart_django.dispatch.run_due"


def on_due(count: int = 1) -> None:
    """Enqueue one ``run_due`` for the cluster once the current transaction commits (it runs
    every due execution, however many ``count`` says there are)."""
    transaction.on_commit(enqueue)


def enqueue(**kwargs: Any) -> None:
    """Put one ``run_due`` task on the broker; if the broker fails, log a warning and return."""
    from django_q.tasks import async_task

    try:
        async_task(TASK, group="zart", save=False)
    except Exception as exc:  # any broker's error: the work is stored, the schedule will run it
        logger.warning(
            "could not enqueue %s on the django-q2 broker (%s); the work is stored and runs"
            " at the next wake-up (the every-minute schedule at the latest)",
            TASK,
            exc,
        )


def run_due() -> None:
    """The django-q2 task: run due executions here until none is due. Its log lines go where the
    cluster's own go (the ``django-q`` logger's handlers) unless ``LOGGING`` routes them."""
    from .worker import Worker

    cluster = logging.getLogger("django-q")
    ensure_output(cluster.handlers, cluster.getEffectiveLevel())
    Worker().run(once=True)


def ensure_schedule(**kwargs: Any) -> None:
    """Create the every-minute schedule of ``run_due`` (after ``migrate``), once."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name=SCHEDULE_NAME,
        defaults={"func": TASK, "schedule_type": Schedule.MINUTES, "minutes": 1},
    )

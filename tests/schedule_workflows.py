"""A recurring task for the crash test of schedules, loaded only by the worker processes that
test starts (``ZART_TEST_WORKFLOW_MODULES=tests.schedule_workflows``): it ticks every two
seconds in real time. Each occurrence runs the steps "first" and "second" of
``tests.workflows``, logging as its own job (named by its execution id) to the file named by
``ZART_TEST_SCHEDULE_LOG``, so ``<log>.hold-second`` holds every occurrence inside "second"."""

from __future__ import annotations

import os
from datetime import datetime

from tests.workflows import Job, first, second
from zart_django import current_execution_id, durable


@durable("every-two-seconds", every="2s", overlap="skip")
def every_two_seconds(at: datetime) -> list[str]:
    job = Job(log=os.environ["ZART_TEST_SCHEDULE_LOG"], name=current_execution_id())
    return [first(job), second(job), at.isoformat()]

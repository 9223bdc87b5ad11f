"""Helpers for testing durable functions in a project's own test suite, with no worker process.

```python
from zart_django.testing import run_until_idle, advance_time

scheduler.start_for(approval_task, "t-1", request)
run_until_idle()                      # runs it here until it parks
advance_time("121s")                  # the wait's deadline passes
run_until_idle()                      # EventTimeout is raised inside the function
```
"""

from __future__ import annotations

import socket

from . import clock, conf, store
from .durations import Duration, parse_duration
from .registry import TaskRegistry, default_registry
from .replay import run_execution


def run_until_idle(registry: TaskRegistry | None = None, max_rounds: int = 1000) -> int:
    """Run every due execution of the tasks in ``registry`` in this thread until none is due;
    return how many runs it made. Executions of other tasks stay pending, as with a worker."""
    registry = registry or default_registry
    runs = 0
    owner = f"{socket.gethostname()}:testing"
    batch, lease = int(conf.get("BATCH_SIZE")), float(conf.get("LEASE"))
    for _ in range(max_rounds):
        claims = store.claim_due(owner, batch, lease, tasks=registry.names())
        if not claims:
            return runs
        for claim in claims:
            run_execution(claim, registry)
            runs += 1
    raise RuntimeError(f"executions were still due after {max_rounds} rounds")


def advance_time(delta: Duration) -> None:
    """Move the engine's clock forward, so deadlines, sleeps and retry delays pass at once."""
    clock.shift(parse_duration(delta))


def reset_time() -> None:
    """Put the engine's clock back to real time."""
    clock.reset()

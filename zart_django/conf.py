"""The ``ZART`` settings dict, read in one place, with its defaults.

```python
ZART = {
    "POLL_INTERVAL": 1.0,      # seconds between polls for due work when idle
    "LEASE": 30.0,             # seconds a claimed execution stays owned without a heartbeat
    "CONCURRENCY": 4,          # executions one worker process runs at once (threads)
    "BATCH_SIZE": 10,          # executions claimed per query, at most
    "MAX_RECOVERIES": 10,      # times an execution may be reclaimed from dead workers before it fails
    "WORKFLOW_MODULES": [],    # extra modules to import so their durable tasks register
    "DISPATCH": "worker",      # "worker": run_zart_worker runs executions; "django_q": qcluster does
    "RETENTION": None,         # e.g. "30d": workers delete executions finished longer ago
    "APPROVALS_EMAIL": True,   # email approval requests to those who may decide them
    "APPROVALS_BASE_URL": "",  # e.g. "https://ops.example.com": makes the emails' links absolute
    "DATABASE": "default",     # the connection alias every query of the engine uses
}
```
Each installed app's ``workflows`` module is imported at start-up too.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings

from .durations import parse_duration

DEFAULTS: dict[str, Any] = {
    "POLL_INTERVAL": 1.0,
    "LEASE": 30.0,
    "CONCURRENCY": 4,
    "BATCH_SIZE": 10,
    "MAX_RECOVERIES": 10,
    "WORKFLOW_MODULES": [],
    "DISPATCH": "worker",
    "RETENTION": None,
    "APPROVALS_EMAIL": True,
    "APPROVALS_BASE_URL": "",
    "DATABASE": "default",
}


def get(name: str) -> Any:
    """The value of ``ZART[name]``, or its default (read on every call: tests override it)."""
    chosen = getattr(settings, "ZART", {})
    return chosen[name] if name in chosen else DEFAULTS[name]


def retention() -> timedelta | None:
    """``ZART["RETENTION"]`` as a ``timedelta``, or None when retention is off."""
    value = get("RETENTION")
    return None if value is None else parse_duration(value)


def database() -> str:
    """``ZART["DATABASE"]``: the alias of the connection the engine's queries use."""
    return get("DATABASE")

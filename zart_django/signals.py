"""Django signals for what happens to executions, each sent once the transaction that made it
happen commits (at once when there is none), so a receiver never hears of a rolled-back change.

The sender is always ``zart_django.models.Execution``; filter on the ``task_name`` argument. A
receiver that raises is logged (ERROR, on the ``zart_django`` logger with the execution's id and
on ``django.dispatch`` with the traceback) and never reaches the engine or the caller: the change
it was told about is committed already. Apps built on the engine send theirs with ``send`` too
(``zart_django.approvals.signals``).

```python
from django.dispatch import receiver
from zart_django.signals import execution_finished

@receiver(execution_finished)
def on_finished(sender, execution_id, task_name, status, output, error, **kwargs):
    ...
```
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal

from . import conf

logger = logging.getLogger("zart_django")

execution_started = Signal()
"""A new execution was stored by ``start``: ``execution_id``, ``task_name``, ``input`` (JSON).
A repeated, idempotent ``start`` of the same execution sends nothing."""

execution_finished = Signal()
"""An execution ended: ``execution_id``, ``task_name``, ``status`` (completed, failed, cancelled,
timed_out), ``output`` (JSON, for completed) and ``error`` (text, else "")."""

execution_blocked = Signal()
"""An execution was held because its recorded history no longer matches its code:
``execution_id``, ``task_name``, ``error`` (which step differs and how to fix it)."""

step_failed = Signal()
"""A step's body raised: ``execution_id``, ``task_name``, ``step`` (its key, ``name`` or
``name#2``), ``error``, ``attempt`` (1 for the first) and ``will_retry``."""


def send(signal: Signal, **arguments: Any) -> None:
    """Send ``signal`` with ``arguments`` once the engine's current transaction commits (on
    ``ZART["DATABASE"]``); log, never raise, what a receiver raises."""
    transaction.on_commit(lambda: _send_now(signal, arguments), using=conf.database())


def _send_now(signal: Signal, arguments: dict[str, Any]) -> None:
    from .models import Execution

    for receiver, result in signal.send_robust(sender=Execution, **arguments):
        if isinstance(result, Exception):
            logger.error(
                "execution %s: signal receiver %s raised %s: %s",
                arguments.get("execution_id", "?"),
                getattr(receiver, "__qualname__", receiver),
                type(result).__name__,
                result,
            )  # Django's "django.dispatch" logger has logged the traceback


def send_blocked(execution_id: str, error: str, task_name: str = "") -> None:
    """Send ``execution_blocked`` after commit (for the code that blocks an execution)."""
    send(execution_blocked, execution_id=execution_id, task_name=task_name, error=error)

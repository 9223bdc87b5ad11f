"""Signals for approvals, sent as the engine's are (``zart_django.signals``): once the change
commits, with ``zart_django.models.Execution`` as the sender; a receiver that raises is logged.

```python
from django.dispatch import receiver
from zart_django.approvals.signals import approval_decided

@receiver(approval_decided)
def on_decided(sender, execution_id, task_name, event, approved, reviewer, **kwargs):
    ...
```
"""

from __future__ import annotations

from django.dispatch import Signal

approval_requested = Signal()
"""A durable function asked for a decision: ``execution_id``, ``task_name``, ``event``,
``permission``, ``title``."""

approval_decided = Signal()
"""A person decided: ``execution_id``, ``task_name``, ``event``, ``approved``, ``reviewer``
(username), ``comment``, ``source`` (admin, inbox, api, code)."""

approval_voted = Signal()
"""A person voted on a request that needs more approvals (the last vote sends
``approval_decided`` instead): ``execution_id``, ``task_name``, ``event``, ``approved``,
``reviewer``, ``progress`` ("1 of 2 approvals")."""

approval_reassigned = Signal()
"""A request was handed to someone else: ``execution_id``, ``request`` (the
``ApprovalRequest``), ``reassigned_by`` (username), ``to`` ("user:<username>"), ``reason``."""

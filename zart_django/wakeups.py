"""The wakers: what runs when a write makes work due, so that ``store`` need not know who listens.

The store calls :func:`work_is_due` inside the transaction that made work due; the app's
``ready()`` registers the wakers the project uses (``zart_django.notify``'s push wake-ups, a
django-q2 enqueue with ``DISPATCH = "django_q"``). A waker runs inside that transaction: one that
must wait for the commit defers itself with ``transaction.on_commit``, so nothing is woken for a
write rolled back.
"""

from __future__ import annotations

from collections.abc import Callable

Waker = Callable[[int], None]
"""Called with how many executions the transaction makes due."""

_wakers: list[Waker] = []


def register(waker: Waker) -> None:
    """Call ``waker`` in every transaction that makes work due, once however often registered."""
    if waker not in _wakers:
        _wakers.append(waker)


def clear() -> None:
    """Forget every waker (before registering the ones the current settings call for)."""
    _wakers.clear()


def work_is_due(count: int = 1) -> None:
    """Tell every registered waker that the current transaction makes ``count`` executions due."""
    for waker in _wakers:
        waker(count)

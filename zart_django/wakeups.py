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
_push: list[Waker] = []  # the push waker, if one is registered


def register(waker: Waker, *, push: bool = False) -> None:
    """Call ``waker`` in every transaction that makes work due, once however often registered.
    ``push``: it is the database's push wake-up (``zart_django.notify``), which a write can
    send in its own statement instead (see ``work_is_due``)."""
    if waker not in _wakers:
        _wakers.append(waker)
    if push:
        _push[:] = [waker]


def clear() -> None:
    """Forget every waker (before registering the ones the current settings call for)."""
    _wakers.clear()
    _push.clear()


def pushes() -> bool:
    """Whether the push wake-up is registered: only then may a write send it itself."""
    return bool(_push)


def work_is_due(count: int = 1, *, pushed: bool = False) -> None:
    """Tell every registered waker that the current transaction makes ``count`` executions due;
    with ``pushed``, every one but the push waker: the write's own statement sent its wake-up
    (PostgreSQL's delivery of an event, one round trip fewer)."""
    for waker in _wakers:
        if not (pushed and waker in _push):
            waker(count)

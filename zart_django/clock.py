"""The engine's one source of "now", so tests can move time forward (see ``zart_django.testing``)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

_offset = timedelta(0)


def now() -> datetime:
    """The current time as the engine sees it (aware, UTC)."""
    moment = timezone.now()
    return moment + _offset if _offset else moment


def offset() -> timedelta:
    """How far ``shift`` moved the engine's clock from real time (the SQL clock adds it too)."""
    return _offset


def shift(delta: timedelta) -> None:
    """Move the engine's clock forward by ``delta`` (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Put the engine's clock back to real time."""
    global _offset
    _offset = timedelta(0)

"""Deterministic values: the time, random numbers, ids and any other value a durable function
reads from the world, recorded on first run and returned unchanged on every replay.

Inside a durable function each call is recorded like a step (a checkpoint named ``now``,
``now#2``, ..., or the name given to ``capture``), so a function resumed after a crash or a wait
takes the same branch it took before. Outside one, and inside a step's body (whose result is
recorded already), they return fresh values: ``now()`` the engine clock's now. In an ``async
def`` durable function they are awaited (``await now()``): recording one writes a checkpoint.
"""

from __future__ import annotations

import random as _random
import typing
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from . import clock
from .names import check_name
from .replay import awaitable_in_async, recorded_value

T = TypeVar("T")


@awaitable_in_async
def now() -> datetime:
    """The engine's now (aware, UTC), recorded: a replay returns the time of the first run."""
    return recorded_value("now", clock.now, datetime)


@awaitable_in_async
def uuid4() -> uuid.UUID:
    """A random UUID, recorded: a replay returns the same one."""
    return uuid.UUID(recorded_value("uuid4", lambda: str(uuid.uuid4()), str))


@awaitable_in_async
def random() -> float:
    """A random float in [0, 1), recorded: a replay returns the same one."""
    return recorded_value("random", _random.random, float)


@awaitable_in_async
def capture(name: str, fn: Callable[[], T]) -> T:
    """``fn()``'s value, recorded as ``name`` (stored as JSON, rebuilt into ``fn``'s return
    annotation if it has one): a replay returns the recorded value without calling ``fn``. If
    ``fn`` raises, nothing is recorded and the error propagates (a step retries; this does not)."""
    check_name(name, "value name")
    return recorded_value(name, fn, _return_type(fn))


def _return_type(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return", Any)
    except TypeError:  # a builtin or a callable object without annotations
        return Any

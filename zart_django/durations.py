"""Durations given as ``timedelta``, seconds, or short strings such as ``"30s"``, ``"5m"``, ``"1h30m"``."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")

Duration = timedelta | int | float | str


def parse_duration(value: Duration) -> timedelta:
    """Return ``value`` as a ``timedelta``; raise ``ValueError`` naming the value if it is not one."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        return timedelta(seconds=value)
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _PART.sub("", text) == "":
            seconds = sum(float(n) * _UNITS[unit] for n, unit in _PART.findall(text))
            return timedelta(seconds=seconds)
    raise ValueError(
        f"not a duration: {value!r} (use a timedelta, seconds, or a string like '30s', '5m', '2h')"
    )

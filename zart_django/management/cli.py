"""What the management commands share: argument types, text for people (tables, times, ages), and
the sections apps built on the engine add to ``manage.py zart show``."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from zart_django.codec import displayable

CELL_WIDTH = 60


@dataclass(frozen=True)
class ShowSection:
    """What an app adds to ``manage.py zart show``: ``rows(execution_id)`` (JSON-ready dicts,
    under the section's key with ``--json``) and, when there are rows, ``text(rows)`` for people,
    under ``title``."""

    title: str
    rows: Callable[[str], list[dict[str, Any]]]
    text: Callable[[list[dict[str, Any]]], str]


show_sections: dict[str, ShowSection] = {}


def add_show_section(key: str, section: ShowSection) -> None:
    """Show ``section`` for every execution, under ``key`` in ``--json`` (from ``ready()``)."""
    show_sections[key] = section


def at_least_one(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 or less would never run anything)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text}")
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """Rows as aligned columns under ``headers``; each cell on one line, cut at ``CELL_WIDTH``."""
    cells = [[cell(value) for value in row] for row in rows]
    widths = [max([len(h), *(len(row[n]) for row in cells)]) for n, h in enumerate(headers)]
    lines = [headers, ["-" * width for width in widths], *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def cell(value: Any) -> str:
    """One value as a table shows it: "—" for nothing, times as ``when``, JSON compact, one line."""
    if value is None or value == "":
        return "—"
    if isinstance(value, datetime):
        return when(value)
    text = value if isinstance(value, str) else compact_json(value)
    text = " ".join(text.split())
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def compact_json(value: Any) -> str:
    return json.dumps(displayable(value), ensure_ascii=False, separators=(",", ":"))


def when(moment: datetime | None) -> str:
    """A time in UTC to the second, e.g. ``2026-11-26 08:31:05``."""
    return "—" if moment is None else f"{moment:%Y-%m-%d %H:%M:%S}"


def age(span: timedelta) -> str:
    """A duration in its two largest units, e.g. ``3d 4h``, ``5m 2s``, ``0s``."""
    total = max(int(span.total_seconds()), 0)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size or (unit == "s" and not parts):
            parts.append(f"{total // size}{unit}")
            total %= size
    return " ".join(parts[:2])

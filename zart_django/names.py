"""The name alphabet: what execution ids and event names are made of.

1 to 200 characters among ASCII letters, digits and ``- _ . : @ +``, and not ``.`` or ``..``.
Such a name fits both databases, one URL path segment and a log line as it is: no ``/``, no
whitespace, no control or non-ASCII characters.
"""

from __future__ import annotations

import re

from .errors import PayloadError

MAX_LENGTH = 200
ALLOWED = "ASCII letters, digits and - _ . : @ +"
PUNCTUATION = "-_.:@+"

_NAME = re.compile(r"[A-Za-z0-9_.:@+-]+")


def check_name(value: object, what: str) -> str:
    """Return ``value`` if it is a valid name, else raise ``PayloadError`` saying what is wrong
    with it and what is allowed; ``what`` names it ("execution id", "event name")."""
    if not isinstance(value, str):
        raise PayloadError(f"{what} must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_LENGTH:
        raise PayloadError(
            f"{what} must be 1 to {MAX_LENGTH} characters long, not {len(value)}"
            f" ({_shown(value)}): {_rule()}"
        )
    if value in (".", ".."):
        raise PayloadError(f"{what} cannot be {value!r}: {_rule()}")
    if not _NAME.fullmatch(value):
        position = next(i for i, char in enumerate(value) if not _NAME.fullmatch(char))
        char = value[position]
        raise PayloadError(
            f"{what} {_shown(value)} has {char!r} (U+{ord(char):04X}) at position {position}:"
            f" {_rule()}"
        )
    return value


def _rule() -> str:
    return f"use 1 to {MAX_LENGTH} of {ALLOWED} (not '.' or '..')"


def _shown(value: str) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else f"{shown[:57]}...'"

"""Counting the queries a piece of work made, for tests that pin the engine's query budget."""

from __future__ import annotations

import re
from typing import Any


def step_reads(queries: Any) -> list[str]:
    """The SELECTs of step results among ``queries`` (a ``CaptureQueriesContext``)."""
    return [
        q["sql"]
        for q in queries
        if q["sql"].startswith("SELECT") and 'FROM "zart_django_stepresult"' in q["sql"]
    ]


def step_writes(queries: Any) -> list[str]:
    """The INSERTs and UPDATEs of step results among ``queries``."""
    return [
        q["sql"]
        for q in queries
        if re.search(r"(INSERT INTO|UPDATE) \S*zart_django_stepresult\b", q["sql"])
    ]

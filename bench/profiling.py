"""The hot path under cProfile, and the queries one approval workflow makes, statement by statement."""

from __future__ import annotations

import cProfile
import io
import pstats
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

from django.db import connection
from django.test.utils import CaptureQueriesContext

from bench.workflows import Decision, Request, approval
from zart_django import DurableScheduler
from zart_django.testing import run_until_idle

_TABLE = {  # where the table a statement works on is named, by its first word
    "SELECT": re.compile(r'\bFROM\s+"?(\w+)'),
    "INSERT": re.compile(r'\bINTO\s+"?(\w+)'),
    "UPDATE": re.compile(r'^\s*UPDATE\s+"?(\w+)'),
    "DELETE": re.compile(r'\bFROM\s+"?(\w+)'),
}


def profile(count: int) -> str:
    """Profile ``count`` approvals run here; return the report.

    The report lists the queries the worker side of one approval makes, then the top 15 functions
    by cumulative and by own time. Only ``run_until_idle`` is measured, not the client calls.
    """
    statements: list[str] = []

    @contextmanager
    def capture() -> Iterator[None]:
        with CaptureQueriesContext(connection) as captured:
            yield
        statements.extend(q["sql"] for q in captured.captured_queries)

    _approvals(1, capture)
    profiler = cProfile.Profile()
    _approvals(count, lambda: profiler)
    lines = [f"worker-side queries of one approval workflow: {len(statements)}"]
    kinds = Counter(_kind(sql) for sql in statements)
    lines += [f"  {n:3d}  {kind}" for kind, n in kinds.most_common()]
    for order in ("cumulative", "tottime"):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(15)
        body = out.getvalue().strip().splitlines()
        header = next(i for i, line in enumerate(body) if "ncalls" in line)
        lines += ["", f"top 15 by {order} time, {count} approvals:", body[0], *body[header:]]
    return "\n".join(lines)


def _approvals(count: int, around: Callable[[], AbstractContextManager[object]]) -> None:
    """Start ``count`` approvals, run them until they park, offer their events, run them to the
    end; the two ``run_until_idle`` calls run inside ``around()``."""
    scheduler = DurableScheduler()
    ids = [f"profile-{uuid.uuid4().hex[:8]}-{i}" for i in range(count)]
    for execution_id in ids:
        scheduler.start_for(approval, execution_id, Request("bench", 100))
    with around():
        run_until_idle()
    for execution_id in ids:
        scheduler.offer_event(execution_id, "approval", Decision(True, "bench"))
    with around():
        run_until_idle()


def _kind(sql: str) -> str:
    """A statement summed up: ``UPDATE zart_django_execution``, ``BEGIN``, ``SELECT pg_notify``."""
    verb = sql.split(None, 1)[0].upper()
    pattern = _TABLE.get(verb)
    match = pattern.search(sql) if pattern else None
    return f"{verb} {match[1]}" if match else sql.split("(", 1)[0].strip()

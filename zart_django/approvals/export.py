"""The audit trail as CSV: one row per decision, streamed, with every cell a spreadsheet could
take for a formula made inert."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet

from .models import ApprovalRecord

COLUMNS = (
    "decided_at",
    "execution_id",
    "run",
    "task_name",
    "event",
    "outcome",
    "reviewer",
    "reviewer_name",
    "comment",
    "source",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may read as the start of a formula (OWASP's list for CSV injection)."""
CHUNK = 500


def inert(value: Any) -> str:
    """``value`` as a cell no spreadsheet runs: text starting like a formula gets a ``'`` first."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_rows(records: QuerySet[ApprovalRecord]) -> Iterator[str]:
    """The header, then one line per record of ``records``, read from the database in chunks."""

    class Line:
        def write(self, line: str) -> str:
            return line

    writer = csv.writer(Line())
    yield writer.writerow(COLUMNS)
    for record in records.iterator(chunk_size=CHUNK):
        yield writer.writerow(inert(cell) for cell in _cells(record))


def _cells(record: ApprovalRecord) -> Iterable[Any]:
    return (
        record.decided_at.isoformat(),
        record.execution_id,
        record.run,
        record.task_name,
        record.event,
        "approved" if record.approved else "rejected",
        record.reviewer,
        record.reviewer_name,
        record.comment,
        record.source,
    )

"""Rows the benchmarks write straight into the engine's tables: cleared, or bulk-loaded.

Parked executions are generated inside the database (``generate_series`` on PostgreSQL, a
recursive CTE on SQLite): a million rows load in seconds, with no Python loop.
"""

from __future__ import annotations

from django.db import connection, transaction
from django.utils import timezone

from zart_django.models import Event, Execution, Status, StepResult

_PARKED_COLUMNS = (
    "id, task_name, status, input, output, error, waiting_on, scheduled_at, deadline,"
    " lease_token, lease_owner, recoveries, run, created_at, updated_at, finished_at, started_by"
)

# Half the parked executions wait with no deadline (scheduled_at NULL), half until a day 1 to 30
# days ahead; none is due.
_PARKED_POSTGRES = f"""
INSERT INTO {{table}} ({_PARKED_COLUMNS})
SELECT 'parked-' || i, 'bench-approval', 'waiting', '{{{{"requester": "x", "amount": 1}}}}'::jsonb,
       NULL, '', 'approval', due, due, '', '', 0, 1, now(), now(), NULL, ''
FROM (
    SELECT i, CASE WHEN i %% 2 = 0 THEN NULL
                   ELSE now() + (1 + i %% 30) * interval '1 day' END AS due
    FROM generate_series(%s, %s - 1) AS i
) AS parked
"""
_PARKED_SQLITE = f"""
WITH RECURSIVE n(i) AS (SELECT %s UNION ALL SELECT i + 1 FROM n WHERE i + 1 < %s)
INSERT INTO {{table}} ({_PARKED_COLUMNS})
SELECT 'parked-' || i, 'bench-approval', 'waiting', '{{{{"requester": "x", "amount": 1}}}}',
       NULL, '', 'approval', due, due, '', '', 0, 1, datetime('now'), datetime('now'), NULL, ''
FROM (
    SELECT i, CASE WHEN i %% 2 = 0 THEN NULL
                   ELSE strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '+' || (1 + i %% 30) || ' days')
              END AS due
    FROM n
)
"""


def clear() -> None:
    """Empty the engine's tables (and, on PostgreSQL, the demo tables that point to them)."""
    tables = [m._meta.db_table for m in (Event, StepResult, Execution)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def insert_parked(first: int, stop: int) -> None:
    """Insert parked executions ``parked-<first>`` .. ``parked-<stop - 1>`` and refresh statistics.

    PostgreSQL's statistics are refreshed with ANALYZE, as autovacuum would soon do.
    """
    template = _PARKED_POSTGRES if connection.vendor == "postgresql" else _PARKED_SQLITE
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(template.format(table=Execution._meta.db_table), [first, stop])
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {Execution._meta.db_table}")


def make_due(ids: list[str]) -> None:
    """Create (or reset) pending executions ``ids``, all due now."""
    now = timezone.now()
    delete(ids)
    Execution.objects.bulk_create(
        Execution(
            id=i,
            task_name="bench-approval",
            status=Status.PENDING,
            scheduled_at=now,
            created_at=now,
            updated_at=now,
        )
        for i in ids
    )


def delete(ids: list[str]) -> None:
    """Delete executions ``ids`` (with their steps and events)."""
    Execution.objects.filter(pk__in=ids).delete()

"""Counts that stay cheap beside big tables: a list page never counts a whole table.

``BoundedPaginator`` is Django's paginator with a count that reads at most ``bound`` rows from the
start of the page asked for (so every page stays reachable with Next); past the bound, an unfiltered list on PostgreSQL takes the planner's estimate of the table's rows
(``pg_class.reltuples``, kept by ANALYZE and autovacuum), any other the bound itself, and says so
with ``more``. The admin's execution list and the approvals inbox page with it.
"""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Model, QuerySet
from django.utils.functional import cached_property

COUNT_BOUND = 10_000
"""How many rows a list page counts at most (200 pages of 50)."""


def bounded_count(queryset: QuerySet[Any], bound: int, start: int = 0) -> int:
    """How many rows ``queryset`` has from row ``start`` on, reading at most ``bound`` of them
    (``bound`` if more)."""
    return queryset.order_by().values("pk")[start : start + bound].count()


def estimated_rows(model: type[Model], using: str) -> int | None:
    """The planner's estimate of ``model``'s rows on PostgreSQL (None elsewhere, or before the
    table was first analyzed)."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    return row[0] if row and row[0] > 0 else None


class BoundedPaginator(Paginator):
    """A paginator whose ``count`` reads at most ``bound`` rows (default ``COUNT_BOUND``) from the
    start of page ``start_page`` (the one asked for; see the module's docstring); ``more`` says
    the list has more rows than ``count``, or may have (an estimate)."""

    def __init__(
        self,
        object_list: QuerySet[Any],
        per_page: int,
        *args: Any,
        start_page: int = 1,
        bound: int = COUNT_BOUND,
        **kwargs: Any,
    ) -> None:
        super().__init__(object_list, per_page, *args, **kwargs)
        self.bound = max(bound, int(per_page) + 1)  # past one page, so "more" means pages
        self.start = max(start_page - 1, 0) * int(per_page)
        self.more = False

    @cached_property
    def count(self) -> int:
        """The rows, up to ``bound`` past the start; past it, the estimate of an unfiltered table
        if larger. A start past the last row counts from the top (the last page is shown)."""
        queryset = self.object_list
        counted = self.start + bounded_count(queryset, self.bound, self.start)
        if counted == self.start and self.start:
            counted = bounded_count(queryset, self.bound)
        if counted - self.start < self.bound:
            return counted
        self.more = True
        estimate = None
        if not queryset.query.where:
            estimate = estimated_rows(queryset.model, queryset.db)
        return max(counted, estimate or 0)


def page_number(value: Any) -> int:
    """The page a query string asks for (``?page=``), 1 if it is not a whole number."""
    text = str(value or "")
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else 1

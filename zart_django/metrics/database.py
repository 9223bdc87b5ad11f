"""Gauges read from the database when metrics are scraped: the same whichever process serves them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily

from zart_django import clock, store


class DatabaseCollector:
    """Executions by status and task, and the due backlog with its age: two queries a scrape."""

    def collect(self) -> Iterator[Any]:
        executions = GaugeMetricFamily(
            "zart_executions", "Executions by status and task", labels=["status", "task"]
        )
        for status, task, count in store.count_by_status_and_task():
            executions.add_metric([status, task], count)
        yield executions
        due, oldest = store.due_backlog()
        yield GaugeMetricFamily(
            "zart_due_executions",
            "Executions due now that no worker has claimed yet (the backlog)",
            value=due,
        )
        age = (clock.now() - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "zart_due_oldest_age_seconds",
            "How long the oldest due execution has been due (0 when none is)",
            value=max(age, 0.0),
        )

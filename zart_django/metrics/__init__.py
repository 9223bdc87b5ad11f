"""Prometheus metrics, with the ``metrics`` extra (``pip install "zart-django[metrics]"``).

Each process that runs executions counts its own claims, lease losses, step durations and
event-to-resume latencies in ``REGISTRY``; the view in ``zart_django.metrics.views`` serves them
with what the database says about every execution (by status and task, the due backlog). Every
recording function does nothing when ``prometheus_client`` is not installed.
"""

from __future__ import annotations

import importlib.util
from typing import Any

AVAILABLE = importlib.util.find_spec("prometheus_client") is not None

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)

if AVAILABLE:
    from prometheus_client import CollectorRegistry, Counter, Histogram

    REGISTRY = CollectorRegistry()
    _CLAIMS = Counter(
        "zart_worker_claims", "Executions claimed by this process's workers", registry=REGISTRY
    )
    _LEASE_LOSSES = Counter(
        "zart_lease_losses",
        "Runs that lost their execution's lease (stalled past it, or cancelled) and stopped",
        registry=REGISTRY,
    )
    _STEP_SECONDS = Histogram(
        "zart_step_duration_seconds",
        "How long a step's body ran, by task, step and outcome (completed or failed)",
        ["task", "step", "outcome"],
        buckets=_SECONDS,
        registry=REGISTRY,
    )
    _RESUME_SECONDS = Histogram(
        "zart_event_resume_latency_seconds",
        "From an event's delivery to a parked execution (or a decision to an approval) going on",
        ["task"],
        buckets=_SECONDS,
        registry=REGISTRY,
    )


def claimed(count: int = 1) -> None:
    """Count executions a worker claimed."""
    if AVAILABLE:
        _CLAIMS.inc(count)


def lease_lost() -> None:
    """Count a run that stopped because its execution's lease was no longer its own."""
    if AVAILABLE:
        _LEASE_LOSSES.inc()


_STEP_CHILDREN: dict[tuple[str, str, str], Any] = {}
"""The step histogram's child of each (task, step, outcome) seen: ``labels`` checks and locks on
every call, a cost a step need not pay twice."""


def step_ran(task: str, step: str, outcome: str, seconds: float) -> None:
    """Record how long one run of a step's body took."""
    if AVAILABLE:
        labels = (task, step, outcome)
        child = _STEP_CHILDREN.get(labels)
        if child is None:
            child = _STEP_CHILDREN[labels] = _STEP_SECONDS.labels(*labels)
        child.observe(max(seconds, 0.0))


def resumed_after_event(task: str, seconds: float) -> None:
    """Record how long a parked execution took to go on after its event was delivered."""
    if AVAILABLE:
        _RESUME_SECONDS.labels(task).observe(max(seconds, 0.0))

"""OpenTelemetry spans, when ``opentelemetry-api`` is installed (the ``otel`` extra); nothing
otherwise. A span ``zart.execution <task>`` covers each run of an execution by a worker (from its
claim until it finishes, parks or is handed back) and a child span ``zart.step <step>`` each run
of a step's body; replayed steps, answered from the database, get none. The project chooses the
exporter by configuring the OpenTelemetry SDK as usual. Until a tracer provider is set (in code
or by ``OTEL_PYTHON_TRACER_PROVIDER``), no span is begun: OpenTelemetry's own no-op spans cost a
step more than its checkpoint's statement does on SQLite.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from typing import Any

try:
    from opentelemetry import trace
except ImportError:  # the library is optional
    trace = None

_FAILED = {"failed", "timed_out"}


_TRACED: contextvars.ContextVar[bool | None] = contextvars.ContextVar("zart_traced", default=None)
"""Whether the run of an execution in progress here records spans, decided once as it begins:
asking OpenTelemetry costs a step a look-up in ``os.environ``."""


def _recording() -> bool:
    """Whether a tracer provider is set: before one is, OpenTelemetry's spans record nothing."""
    return trace is not None and not isinstance(
        trace.get_tracer_provider(), (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    )


@contextlib.contextmanager
def execution_span(execution_id: str, task: str) -> Iterator[Callable[[str], str]]:
    """A span for one run of an execution; the function it gives records the status the run
    left the execution in (an error status for failed and timed_out) and returns it."""
    recording = _recording()
    decided = _TRACED.set(recording)  # the run's step spans follow the same answer
    try:
        if not recording:
            yield _unchanged
            return
        attributes = {"zart.execution_id": execution_id, "zart.task": task}
        tracer = trace.get_tracer("zart_django")
        with tracer.start_as_current_span(f"zart.execution {task}", attributes=attributes) as span:

            def outcome(status: str) -> str:
                span.set_attribute("zart.status", status)
                if status in _FAILED:
                    span.set_status(trace.StatusCode.ERROR, status)
                return status

            yield outcome
    finally:
        _TRACED.reset(decided)


_NO_SPAN = contextlib.nullcontext()


def step_span(execution_id: str, step: str, attempt: int) -> contextlib.AbstractContextManager[Any]:
    """A span for one run of a step's body; an exception it raises is recorded on it. Until a
    tracer provider is set (when the execution's run began), a context manager that does
    nothing (shared: a step's cost)."""
    traced = _TRACED.get()
    if not (_recording() if traced is None else traced):
        return _NO_SPAN
    attributes = {"zart.execution_id": execution_id, "zart.step": step, "zart.attempt": attempt}
    return trace.get_tracer("zart_django").start_as_current_span(
        f"zart.step {step}", attributes=attributes
    )


def _unchanged(status: str) -> str:
    return status

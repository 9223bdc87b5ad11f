"""OpenTelemetry spans with the real SDK and an in-memory exporter; and a real worker process
that has neither prometheus_client nor OpenTelemetry runs executions all the same."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import ROOT, subprocess_env
from tests.workflows import Approval, Job
from zart_django.testing import run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def test_a_span_per_run_of_an_execution_and_per_step_body_run(scheduler, job, spans):
    scheduler.start("t-1", "three-steps", job)
    run_until_idle()
    parked = spans.get_finished_spans()
    assert [s.name for s in parked] == [
        "zart.step first",
        "zart.step second",
        "zart.execution three-steps",
    ]
    run = parked[-1]
    assert dict(run.attributes) == {
        "zart.execution_id": "t-1",
        "zart.task": "three-steps",
        "zart.status": "waiting",
    }
    assert all(s.parent.span_id == run.context.span_id for s in parked[:2])
    assert parked[0].attributes["zart.attempt"] == 1

    spans.clear()
    scheduler.offer_event("t-1", "go", Approval(True, "Tia"))
    run_until_idle()
    resumed = spans.get_finished_spans()  # first and second replay from the database: no span
    assert [s.name for s in resumed] == ["zart.step third", "zart.execution three-steps"]
    assert resumed[-1].attributes["zart.status"] == "completed"
    assert resumed[-1].status.status_code == trace.StatusCode.UNSET


def test_a_failure_marks_the_step_and_execution_spans_as_errors(scheduler, tmp_path, spans):
    scheduler.start("t-2", "failing", Job(log=str(tmp_path / "log")))
    run_until_idle()
    step, run = spans.get_finished_spans()
    assert step.name == "zart.step no-retry"
    assert step.status.status_code == trace.StatusCode.ERROR
    assert [e.attributes["exception.type"] for e in step.events] == ["ValueError"]
    assert run.attributes["zart.status"] == "failed"
    assert run.status.status_code == trace.StatusCode.ERROR


def test_no_span_is_begun_before_a_tracer_provider_is_set(scheduler, job, monkeypatch):
    """OpenTelemetry installed but no provider set (in code or by environment): the engine asks
    it for no tracer, since its spans would record nothing."""

    def no_tracer(*args: object, **kwargs: object) -> None:
        raise AssertionError("a tracer was asked for")

    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    monkeypatch.setattr(trace, "get_tracer", no_tracer)
    scheduler.start("t-4", "three-steps", job)
    run_until_idle()
    assert scheduler.get("t-4").status == "waiting"


BLOCKED = (
    "import runpy, sys\n"
    "sys.modules.update({name: None for name in ('prometheus_client', 'opentelemetry')})\n"
    "sys.argv = ['manage.py', 'run_zart_worker', '--once']\n"
    "runpy.run_path('manage.py', run_name='__main__')\n"
)


def test_a_worker_without_the_optional_libraries_runs_executions(scheduler, job):
    scheduler.start("t-3", "three-steps", job)
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED],
        cwd=ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert scheduler.get("t-3").status == "waiting"
    assert "execution t-3: waiting for event go" in done.stderr

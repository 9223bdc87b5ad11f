"""The Prometheus endpoint (``zart_django.metrics.urls``) with the real prometheus_client: who may
read it, the database's gauges, and the counters of a real worker process (multiprocess mode)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.authtoken.models import Token

from tests.approval_helpers import make_user
from tests.conftest import wait_until
from tests.workflows import Approval, Job
from zart_django import metrics, store
from zart_django.metrics import views
from zart_django.registry import default_registry
from zart_django.replay import run_execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

URL = "/metrics/"


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with ``labels`` in a scrape, None if it is absent."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def scrape(client) -> str:
    """One scrape by a staff user."""
    if not client.session.get("_auth_user_id"):
        client.force_login(make_user("ops", staff=True))
    response = client.get(URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


def test_only_staff_and_users_who_may_view_executions_read_metrics(client):
    assert client.get(URL).status_code == 401  # no credentials
    client.force_login(make_user("clerk"))
    assert client.get(URL).status_code == 403
    client.logout()
    viewer = make_user("viewer", "zart_django.view_execution")
    token = Token.objects.create(user=viewer)
    response = client.get(URL, HTTP_AUTHORIZATION=f"Token {token.key}")  # how Prometheus scrapes
    assert response.status_code == 200
    inactive = make_user("gone", staff=True)
    inactive.is_active = False
    inactive.save()
    client.force_login(inactive)
    assert client.get(URL).status_code in (401, 403)


def test_executions_by_status_and_task_and_the_due_backlog(client, scheduler, tmp_path):
    for n in range(3):
        scheduler.start(f"m-{n}", "three-steps", Job(log=str(tmp_path / "log"), name=f"m-{n}"))
    advance_time("60s")
    text = scrape(client)
    assert sample(text, "zart_executions", status="pending", task="three-steps") == 3
    assert sample(text, "zart_due_executions") == 3
    assert sample(text, "zart_due_oldest_age_seconds") >= 60
    run_until_idle()
    text = scrape(client)
    assert sample(text, "zart_executions", status="waiting", task="three-steps") == 3
    assert sample(text, "zart_executions", status="pending", task="three-steps") is None
    assert sample(text, "zart_due_executions") == 0
    assert sample(text, "zart_due_oldest_age_seconds") == 0


def test_every_run_of_a_step_is_counted_in_this_process(scheduler, tmp_path):
    """Each run of a step's body adds one to its duration histogram, the first as the later."""
    labels = {"task": "three-steps", "step": "first", "outcome": "completed"}

    def count() -> float:
        return metrics.REGISTRY.get_sample_value("zart_step_duration_seconds_count", labels) or 0

    before = count()
    for n in range(2):
        scheduler.start(f"m-count-{n}", "three-steps", Job(log=str(tmp_path / "log"), name="c"))
        run_until_idle()
        assert count() == before + n + 1


def test_a_lost_lease_is_counted(scheduler, job):
    before = metrics.REGISTRY.get_sample_value("zart_lease_losses_total")
    scheduler.start("m-lost", "three-steps", job)
    (claim,) = store.claim_due("test", 1, 30, tasks=["three-steps"])
    scheduler.cancel("m-lost")  # the run that holds the claim may write nothing any more
    assert run_execution(claim, default_registry) == "lease lost"
    assert metrics.REGISTRY.get_sample_value("zart_lease_losses_total") == before + 1


def test_a_worker_process_counters_reach_the_endpoint_in_multiprocess_mode(
    client, scheduler, job, start_worker, tmp_path, monkeypatch
):
    """Workers are other processes: with PROMETHEUS_MULTIPROC_DIR set for them and for the web
    process, the endpoint adds up every process's counters."""
    shared = tmp_path / "prometheus"
    shared.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
    start_worker()
    scheduler.start("m-w", "three-steps", job)
    wait_until(lambda: scheduler.get("m-w").status == "waiting", what="the wait for 'go'")
    scheduler.offer_event("m-w", "go", Approval(True, "Max"))
    scheduler.wait_completion("m-w", timeout=30)
    text = scrape(client)
    assert sample(text, "zart_worker_claims_total") == 2  # the start, then the resume
    for step in ("first", "second", "third"):
        labels = {"task": "three-steps", "step": step, "outcome": "completed"}
        assert sample(text, "zart_step_duration_seconds_count", **labels) == 1
    assert sample(text, "zart_event_resume_latency_seconds_count", task="three-steps") == 1
    assert sample(text, "zart_lease_losses_total") == 0
    assert sample(text, "zart_executions", status="completed", task="three-steps") == 1


def test_without_prometheus_client_the_endpoint_says_what_to_install(client, monkeypatch):
    monkeypatch.setattr(views, "AVAILABLE", False)
    client.force_login(make_user("ops", staff=True))
    response = client.get(URL)
    assert response.status_code == 501
    assert b"zart-django[metrics]" in response.content

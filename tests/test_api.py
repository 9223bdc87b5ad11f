"""The REST API: authentication, permissions, status codes, and decisions that resume executions."""

from __future__ import annotations

from dataclasses import asdict, replace

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from demo_project.approval.workflows import approval_task
from tests.approval_helpers import REQUEST, make_user, start_parked
from tests.workflows import lines
from zart_django import DurableScheduler
from zart_django.approvals.models import ApprovalRecord
from zart_django.models import Event, Execution
from zart_django.testing import advance_time, run_until_idle

pytestmark = pytest.mark.django_db

OPERATOR_PERMS = (
    "zart_django.view_execution",
    "zart_django.add_execution",
    "zart_django.change_execution",
    "zart_django.add_event",
)
REQUEST_INPUT = {"requester_name": "Bob", "resource": "db", "reason": "tests"}


@pytest.fixture
def manager_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("alice", "zart_approvals.decide_approval"))
    return client


@pytest.fixture
def operator_client() -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("ops", *OPERATOR_PERMS))
    return client


class TestAuthentication:
    @pytest.mark.parametrize(
        "method, url",
        [
            ("get", "/api/executions/"),
            ("post", "/api/executions/"),
            ("get", "/api/approvals/"),
            ("post", "/api/approvals/x/decide/"),
            ("post", "/api/executions/x/events/go/"),
        ],
    )
    def test_anonymous_requests_are_refused(self, method, url):
        response = getattr(APIClient(), method)(url, {}, format="json")
        assert response.status_code == 401

    def test_a_token_authenticates(self):
        user = make_user("tok", "zart_django.view_execution")
        token = Token.objects.create(user=user)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        assert client.get("/api/executions/").status_code == 200

    def test_session_posts_need_the_csrf_token(self):
        make_user("ops", *OPERATOR_PERMS)
        client = APIClient(enforce_csrf_checks=True)
        client.login(username="ops", password="pw-for-tests")
        body = {"task": "approval-task", "execution_id": "c-1", "input": REQUEST_INPUT}
        response = client.post("/api/executions/", body, format="json")
        assert response.status_code == 403
        assert "CSRF" in response.json()["detail"]
        assert not Execution.objects.exists()

    def test_users_without_model_permissions_cannot_read_start_or_cancel(self, manager_client):
        refused = manager_client.get("/api/executions/")
        assert refused.status_code == 403
        detail = refused.json()["detail"]  # issue 9: it said nothing of which permissions exist
        assert "needs the permission zart_django.view_execution" in detail
        for permission in ("add_execution", "change_execution", "add_event"):
            assert f"zart_django.{permission}" in detail
        assert "zart_approvals.decide_approval" in detail
        body = {"task": "approval-task", "execution_id": "p-1", "input": REQUEST_INPUT}
        assert manager_client.post("/api/executions/", body, format="json").status_code == 403
        start_parked("p-2")
        assert manager_client.post("/api/executions/p-2/cancel/").status_code == 403
        assert Execution.objects.get(pk="p-2").status == "waiting"


class TestExecutions:
    def test_start_list_filter_paginate_and_retrieve_with_steps(self, operator_client):
        for n in range(3):
            body = {"task": "approval-task", "execution_id": f"x-{n}", "input": REQUEST_INPUT}
            response = operator_client.post("/api/executions/", body, format="json")
            assert response.status_code == 201, response.json()
            assert response.json()["status"] == "pending"
        DurableScheduler().start("other", "no-input")
        run_until_idle()
        page = operator_client.get("/api/executions/?task=approval-task&page_size=2").json()
        assert "count" not in page
        assert len(page["results"]) == 2
        last = operator_client.get(page["next"]).json()
        assert len(last["results"]) == 1 and last["next"] is None
        done = operator_client.get("/api/executions/?status=completed").json()
        assert [e["id"] for e in done["results"]] == ["other"]
        detail = operator_client.get("/api/executions/x-0/").json()
        assert detail["waiting_on"] == "approval:manager-approval"
        assert [s["name"] for s in detail["steps"]] == [
            "validate-request",
            "approval-opened",
            "approval:manager-approval",
        ]

    def test_ordering_by_a_field_and_an_unknown_ordering_is_400_naming_the_choices(
        self, operator_client
    ):
        scheduler = DurableScheduler()
        for n in ("o-1", "o-2", "o-3"):
            scheduler.start(n, "no-input")
            advance_time("1s")
        Execution.objects.filter(pk="o-3").update(status="pending", scheduled_at=None)
        run_until_idle()  # o-1 and o-2 complete; o-3 is left unfinished

        def ids(ordering: str) -> list[str]:
            page = operator_client.get(f"/api/executions/?ordering={ordering}")
            assert page.status_code == 200, page.json()
            return [e["id"] for e in page.json()["results"]]

        assert ids("created_at") == ["o-1", "o-2", "o-3"]
        assert ids("-created_at") == ["o-3", "o-2", "o-1"]
        assert ids("-id") == ["o-3", "o-2", "o-1"]
        assert ids("finished_at")[-1] == "o-3"  # not finished: last, on both databases
        assert ids("-finished_at")[-1] == "o-3"
        unknown = operator_client.get("/api/executions/?ordering=-nope")
        assert unknown.status_code == 400
        message = unknown.json()["ordering"][0]
        assert "'-nope'" in message and "-created_at" in message and "finished_at" in message

    def test_cancel_then_cancel_again_is_a_conflict(self, operator_client):
        start_parked("k-1")
        response = operator_client.post("/api/executions/k-1/cancel/")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert operator_client.post("/api/executions/k-1/cancel/").status_code == 409

    def test_offering_an_event_resumes_the_execution(self, operator_client, job):
        DurableScheduler().start("ev-1", "three-steps", job)
        run_until_idle()
        payload = {"approved": True, "reviewer": "Carol"}
        response = operator_client.post(
            "/api/executions/ev-1/events/go/", {"payload": payload}, format="json"
        )
        assert response.status_code == 202
        run_until_idle()
        assert DurableScheduler().wait_completion("ev-1", timeout=1)["approved"] is True

    @pytest.mark.parametrize("name", ["manager-approval", "approval:manager-approval"])
    def test_an_approval_event_cannot_be_offered_around_the_decision(self, operator_client, name):
        start_parked("ev-2")
        payload = {"approved": True, "reviewer": "me", "comment": ""}
        response = operator_client.post(
            f"/api/executions/ev-2/events/{name}/", {"payload": payload}, format="json"
        )
        assert response.status_code == 403
        assert "POST /api/approvals/ev-2/decide/" in response.json()["detail"]
        assert not Event.objects.exists()

    def test_an_approval_event_posted_before_the_wait_is_refused(self, operator_client):
        """Security item 1 of issue 7: early, the request row does not exist yet."""
        DurableScheduler().start_for(approval_task, "ev-3", REQUEST)
        payload = {"approved": True, "reviewer": "Alice", "comment": ""}
        response = operator_client.post(
            "/api/executions/ev-3/events/approval:manager-approval/",
            {"payload": payload},
            format="json",
        )
        assert response.status_code == 403
        assert "decide" in response.json()["detail"]
        assert not Event.objects.exists()
        run_until_idle()
        assert DurableScheduler().get("ev-3").status == "waiting"


class TestRuns:
    def test_retry_continues_a_failed_execution_and_the_detail_shows_both_runs(
        self, operator_client, job
    ):
        DurableScheduler().start("rt-1", "breaks", replace(job, fail_times=1))
        run_until_idle()
        response = operator_client.post("/api/executions/rt-1/retry/")
        assert response.status_code == 200, response.json()
        assert (response.json()["status"], response.json()["run"]) == ("pending", 2)
        run_until_idle()
        detail = operator_client.get("/api/executions/rt-1/").json()
        assert detail["status"] == "completed"
        assert [(r["number"], r["began"], r["status"]) for r in detail["runs"]] == [
            (1, "start", "failed"),
            (2, "retry", "completed"),
        ]
        assert [(s["name"], s["status"], s["attempts"]) for s in detail["runs"][0]["steps"]] == [
            ("first", "completed", 1),
            ("fragile", "failed", 1),
        ]
        assert [s["name"] for s in detail["steps"]] == ["first", "fragile", "second"]
        assert lines(job.log).count("job start first") == 1

    def test_retry_of_what_did_not_fail_is_409_and_of_nothing_404(self, operator_client):
        DurableScheduler().start("rt-2", "no-input")
        run_until_idle()
        response = operator_client.post("/api/executions/rt-2/retry/")
        assert response.status_code == 409
        assert "cannot be retried: it is completed" in response.json()["detail"]
        assert operator_client.post("/api/executions/nobody/retry/").status_code == 404
        assert Execution.objects.get(pk="rt-2").run == 1

    def test_rerun_from_a_step_and_an_unknown_step_is_400_naming_the_recorded_ones(
        self, operator_client, job
    ):
        DurableScheduler().start("rr-1", "breaks", job)
        run_until_idle()
        url = "/api/executions/rr-1/rerun/"
        missing = operator_client.post(url, {"from_step": "third"}, format="json")
        assert missing.status_code == 400
        assert "recorded steps: 'first', 'fragile', 'second'" in missing.json()["from_step"][0]
        assert operator_client.post(url, {}, format="json").status_code == 400
        nul = operator_client.post(url, {"from_step": "fi\u0000rst"}, format="json")
        assert nul.status_code == 400 and "from_step" in nul.json()
        response = operator_client.post(url, {"from_step": "second"}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["runs"][1]["from_step"] == "second"
        run_until_idle()
        assert lines(job.log).count("job start second") == 2
        assert lines(job.log).count("job start first") == 1

    def test_restart_with_and_without_a_new_input(self, operator_client, job):
        DurableScheduler().start("rs-1", "breaks", job)
        run_until_idle()
        url = "/api/executions/rs-1/restart/"
        bad = operator_client.post(url, {"input": {"nolog": 1}}, format="json")
        assert bad.status_code == 400 and "input" in bad.json()
        assert Execution.objects.get(pk="rs-1").run == 1
        again = {**asdict(job), "name": "again"}
        response = operator_client.post(url, {"input": again}, format="json")
        assert response.status_code == 200, response.json()
        assert response.json()["input"]["name"] == "again"
        run_until_idle()
        assert operator_client.post(url).json()["input"]["name"] == "again"
        assert "again start first" in lines(job.log)

    def test_needs_change_execution(self, manager_client, job):
        DurableScheduler().start("rp-1", "breaks", replace(job, fail_times=1))
        run_until_idle()
        for action, body in [("retry", {}), ("rerun", {"from_step": "first"}), ("restart", {})]:
            response = manager_client.post(f"/api/executions/rp-1/{action}/", body, format="json")
            assert response.status_code == 403
        assert Execution.objects.get(pk="rp-1").run == 1


class TestUnclaimed:
    def test_the_detail_says_how_long_no_worker_claimed_it(self, operator_client):
        DurableScheduler().start("un-1", "no-input")
        advance_time("90s")
        detail = operator_client.get("/api/executions/un-1/").json()
        assert 90 <= detail["unclaimed_seconds"] < 120
        run_until_idle()
        assert operator_client.get("/api/executions/un-1/").json()["unclaimed_seconds"] is None


class TestErrors:
    @pytest.mark.parametrize("wanted", ["done", ""])
    def test_an_unknown_status_filter_is_a_400_naming_the_choices(self, operator_client, wanted):
        """Issue 9: it answered an empty 200, as if nothing had that status (an empty one too,
        found by the schema fuzzer)."""
        response = operator_client.get(f"/api/executions/?status={wanted}")
        assert response.status_code == 400
        assert f"unknown status {wanted!r}" in response.json()["status"][0]
        assert "completed" in response.json()["status"][0]

    def test_unknown_execution_is_404(self, operator_client, manager_client):
        assert operator_client.get("/api/executions/nope/").status_code == 404
        assert operator_client.post("/api/executions/nope/cancel/").status_code == 404
        response = operator_client.post(
            "/api/executions/nope/events/go/", {"payload": 1}, format="json"
        )
        assert response.status_code == 404
        decided = manager_client.post("/api/approvals/nope/decide/", {"approved": True})
        assert decided.status_code == 404

    def test_duplicate_event_and_finished_execution_are_409(self, operator_client, job):
        DurableScheduler().start("dup-1", "three-steps", job)
        run_until_idle()
        url = "/api/executions/dup-1/events/go/"
        body = {"payload": {"approved": True, "reviewer": "a"}}
        assert operator_client.post(url, body, format="json").status_code == 202
        again = operator_client.post(url, body, format="json")
        assert again.status_code == 409
        assert "already delivered" in again.json()["detail"]
        run_until_idle()
        late = operator_client.post("/api/executions/dup-1/events/other/", {}, format="json")
        assert late.status_code == 409
        assert "finished" in late.json()["detail"]

    def test_start_conflicts_and_bad_input_are_400_or_409_with_the_field(self, operator_client):
        url = "/api/executions/"
        ok = {"task": "approval-task", "execution_id": "s-1", "input": REQUEST_INPUT}
        assert operator_client.post(url, ok, format="json").status_code == 201
        again = operator_client.post(url, ok, format="json")
        assert again.status_code == 200  # issue 9: it created nothing, so not 201
        assert again.json()["id"] == "s-1"
        assert Execution.objects.filter(pk="s-1").count() == 1
        other = {**ok, "input": {**REQUEST_INPUT, "resource": "prod"}}
        assert operator_client.post(url, other, format="json").status_code == 409
        unknown = operator_client.post(url, {**ok, "task": "nope"}, format="json")
        assert unknown.status_code == 400
        assert "nope" in unknown.json()["task"][0]
        bad = operator_client.post(
            url, {**ok, "execution_id": "s-2", "input": {"resource": 1}}, format="json"
        )
        assert bad.status_code == 400
        assert "input" in bad.json()
        missing = operator_client.post(url, {"input": {}}, format="json")
        assert missing.status_code == 400
        assert set(missing.json()) == {"task", "execution_id"}

    def test_a_payload_that_does_not_fit_the_wait_is_400_naming_the_field(
        self, operator_client, job
    ):
        DurableScheduler().start("pl-1", "three-steps", job)
        run_until_idle()
        response = operator_client.post(
            "/api/executions/pl-1/events/go/",
            {"payload": {"approved": "yes", "reviewer": "x"}},
            format="json",
        )
        assert response.status_code == 400
        assert "approved" in response.json()["payload"][0]
        assert not Event.objects.exists()

    @pytest.mark.parametrize(
        "url",
        ["/api/executions/", "/api/executions/m-1/events/go/", "/api/approvals/m-1/decide/"],
    )
    def test_malformed_json_is_400(self, operator_client, url):
        operator_client.force_authenticate(
            make_user("both", *OPERATOR_PERMS, "zart_approvals.decide_approval")
        )
        start_parked("m-1")
        response = operator_client.post(url, '{"approved": tru', content_type="application/json")
        assert response.status_code == 400
        assert "JSON parse error" in response.json()["detail"]

    def test_a_json_body_that_is_not_an_object_is_400(self, operator_client):
        response = operator_client.post("/api/executions/", [1, 2], format="json")
        assert response.status_code == 400


class TestApprovals:
    def test_pending_list_decide_and_the_execution_completes(self, manager_client):
        start_parked("ap-1")
        pending = manager_client.get("/api/approvals/").json()["results"]
        assert [(a["execution_id"], a["outcome"]) for a in pending] == [("ap-1", "pending")]
        assert pending[0]["title"] == "Bob requests staging-environment"
        response = manager_client.post(
            "/api/approvals/ap-1/decide/",
            {"approved": False, "comment": "not now", "reviewer": "Mallory"},
            format="json",
        )
        assert response.status_code == 201, response.json()
        assert response.json()["reviewer"] == "alice"
        assert response.json()["source"] == "api"
        run_until_idle()
        output = DurableScheduler().wait_completion("ap-1", timeout=1)
        assert (output.decision, output.reviewer, output.comment) == (
            "rejected",
            "alice",
            "not now",
        )
        assert manager_client.get("/api/approvals/").json()["results"] == []
        shown = manager_client.get("/api/approvals/ap-1/").json()
        assert shown["outcome"] == "rejected"
        assert shown["decision"]["comment"] == "not now"

    def test_deciding_twice_is_409_with_who_decided(self, manager_client):
        start_parked("ap-2")
        url = "/api/approvals/ap-2/decide/"
        assert manager_client.post(url, {"approved": True}, format="json").status_code == 201
        again = manager_client.post(url, {"approved": False}, format="json")
        assert again.status_code == 409
        assert "already approved by alice" in again.json()["detail"]

    def test_without_permission_it_is_403_and_nothing_changes(self):
        start_parked("ap-3")
        client = APIClient()
        client.force_authenticate(make_user("clerk"))
        assert client.get("/api/approvals/").json()["results"] == []
        assert client.get("/api/approvals/ap-3/").status_code == 404
        response = client.post("/api/approvals/ap-3/decide/", {"approved": True}, format="json")
        assert response.status_code == 403
        assert not ApprovalRecord.objects.exists()
        assert not Event.objects.exists()

    def test_a_decision_needs_a_boolean(self, manager_client):
        start_parked("ap-4")
        url = "/api/approvals/ap-4/decide/"
        for body in ({}, {"approved": "maybe"}, {"approved": None}):
            response = manager_client.post(url, body, format="json")
            assert response.status_code == 400
            assert "approved" in response.json()
        assert not ApprovalRecord.objects.exists()


class TestSchema:
    """Issue 9: one ``include("zart_django.api.urls")`` serves the schema and docs, whatever the
    project's ``DEFAULT_SCHEMA_CLASS`` (unset in the demo project, which mounts nothing else)."""

    @pytest.mark.parametrize(
        "schema_class",
        [None, "drf_spectacular.openapi.AutoSchema", "rest_framework.schemas.openapi.AutoSchema"],
    )
    def test_the_include_serves_the_schema_whatever_the_default_schema_class(
        self, manager_client, settings, schema_class
    ):
        if schema_class:
            settings.REST_FRAMEWORK = {
                **settings.REST_FRAMEWORK,
                "DEFAULT_SCHEMA_CLASS": schema_class,
            }
        schema = manager_client.get("/api/schema/?format=json")
        assert schema.status_code == 200
        document = schema.json()
        assert document["info"]["title"] == "zart-django API"
        paths = document["paths"]
        assert "/api/approvals/{id}/decide/" in paths
        assert "/api/executions/{id}/events/{name}/" in paths
        assert "/api/" not in paths and "/api/schema/" not in paths
        assert set(paths["/api/executions/"]["post"]["responses"]) >= {"200", "201"}

    def test_the_docs_page_runs_swagger_ui_from_static_files(self, manager_client):
        docs = manager_client.get("/api/docs/")
        assert docs.status_code == 200
        page = docs.content.decode()
        assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
        assert "/api/schema/?format=json" in page
        assert "://" not in page  # nothing from another host

    @pytest.mark.filterwarnings("ignore:Overriding setting INSTALLED_APPS")
    def test_without_the_sidecar_the_docs_page_lists_the_operations_and_what_to_install(
        self, manager_client, settings
    ):
        settings.INSTALLED_APPS = [
            app for app in settings.INSTALLED_APPS if app != "drf_spectacular_sidecar"
        ]
        docs = manager_client.get("/api/docs/")
        assert docs.status_code == 200
        page = docs.content.decode()
        assert "pip install drf-spectacular-sidecar" in page
        assert "/api/executions/{id}/cancel/" in page
        assert "swagger-ui-bundle" not in page and "://" not in page


class TestQueryValues:
    """Issue 9: query values the schema types are checked: a bad one is a 400 naming it."""

    @pytest.mark.parametrize(
        "query, field",
        [("page_size=false", "page_size"), ("page=0", "page"), ("page_size=501", "page_size")],
    )
    @pytest.mark.parametrize("url", ["/api/executions/", "/api/approvals/"])
    def test_a_page_or_page_size_that_is_not_a_positive_whole_number_is_400(
        self, operator_client, url, query, field
    ):
        response = operator_client.get(f"{url}?{query}")
        assert response.status_code == 400
        assert field in response.json()

    def test_a_page_past_the_last_is_404_with_a_detail(self, operator_client):
        response = operator_client.get("/api/approvals/?page=2")
        assert response.status_code == 404
        assert "detail" in response.json()

    def test_a_page_number_of_the_execution_list_is_400_saying_to_follow_next(
        self, operator_client
    ):
        response = operator_client.get("/api/executions/?page=2")
        assert response.status_code == 400
        assert "next" in response.json()["page"][0]

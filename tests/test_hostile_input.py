"""Hostile input at every edge: a clear 400 (JSON from the API) naming what is wrong, never a 500,
and nothing stored. Rows an older version stored outside today's rules must not take a page down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from tests.approval_helpers import PASSWORD, make_user, start_parked
from tests.conftest import ROOT
from zart_django import (
    DurableScheduler,
    PayloadError,
    TaskRegistry,
    durable,
    step,
    wait_for_event,
)
from zart_django.approvals.models import ApprovalRecord
from zart_django.codec import MAX_DEPTH, encode
from zart_django.models import Event, Execution, StepResult
from zart_django.testing import run_until_idle

ALL_PERMS = (
    "zart_django.view_execution",
    "zart_django.add_execution",
    "zart_django.change_execution",
    "zart_django.delete_execution",
    "zart_django.add_event",
    "zart_approvals.decide_approval",
    "zart_approvals.view_approvalrequest",
    "zart_approvals.view_approvalrecord",
)
REQUEST = {"requester_name": "Bob", "resource": "db", "reason": "tests"}
ALPHABET = "ASCII letters, digits and - _ . : @ +"

# Ids outside the name alphabet, each with what the refusal must say.
BAD_IDS = [
    pytest.param("a/b", "'/' (U+002F) at position 1", id="slash"),
    pytest.param(".", "cannot be '.'", id="dot"),
    pytest.param("..", "cannot be '..'", id="dot-dot"),
    pytest.param("a\x00b", "(U+0000) at position 1", id="nul"),
    pytest.param("a\ud800", "(U+D800) at position 1", id="surrogate"),
    pytest.param("x" * 201, "1 to 200 characters long, not 201", id="201-chars"),
    pytest.param("a b", "(U+0020) at position 1", id="space"),
    pytest.param("a\n", "(U+000A) at position 1", id="newline"),
    pytest.param("café", "(U+00E9) at position 3", id="non-ascii"),
    pytest.param("", "1 to 200 characters long, not 0", id="empty"),
]


def nested(levels: int) -> Any:
    value: Any = []
    for _ in range(levels - 1):
        value = [value]
    return value


def nested_json(levels: int) -> str:
    return "[" * levels + "]" * levels


# Values no database can store, each with the rest of the refusal after the value's name.
BAD_VALUES = [
    pytest.param(
        {"note": "a\x00"},
        ".note: contains a NUL character (U+0000) at position 1, which cannot be stored",
        id="nul",
    ),
    pytest.param(
        {"a": [{"b c": "\x00"}]},
        ".a[0]['b c']: contains a NUL character (U+0000) at position 0, which cannot be stored",
        id="nul-deep-inside",
    ),
    pytest.param(
        {"k\x00": 1},
        ": the key 'k\\x00' contains a NUL character (U+0000) at position 1, which cannot be stored",
        id="nul-key",
    ),
    pytest.param(
        ["ok", "\ud800"],
        "[1]: contains a lone surrogate (U+D800) at position 0: not valid Unicode,"
        " so it cannot be stored",
        id="surrogate",
    ),
    pytest.param(
        {"\udfff": 1},
        ": the key '\\udfff' contains a lone surrogate (U+DFFF) at position 0: not valid Unicode,"
        " so it cannot be stored",
        id="surrogate-key",
    ),
    pytest.param(
        nested(MAX_DEPTH + 1),
        f": lists and objects nested deeper than {MAX_DEPTH} levels",
        id="deep",
    ),
    pytest.param(
        nested(900), f": lists and objects nested deeper than {MAX_DEPTH} levels", id="deep-900"
    ),
    pytest.param(
        {"x": float("nan")}, ".x: nan is not a finite number, and JSON has no such number", id="nan"
    ),
]
JSON_VALUES = BAD_VALUES[:5]  # those JSON can carry in a request body (deep ones have their own)


NUL_RESULT = TaskRegistry()


@step("returns-a-nul")
def returns_a_nul(text: str) -> str:
    return text + chr(0)


@durable("returns-a-nul", registry=NUL_RESULT)
def returns_a_nul_task(text: str) -> str:
    return returns_a_nul(text)


def stored() -> tuple[int, int, int, int]:
    """How many executions, steps, events and decisions there are."""
    return (
        Execution.objects.count(),
        StepResult.objects.count(),
        Event.objects.count(),
        ApprovalRecord.objects.count(),
    )


@pytest.fixture
def client() -> Client:
    """Logged in as a staff user holding every zart permission; a 500 comes back as a response."""
    make_user("root", *ALL_PERMS, staff=True)
    client = Client(raise_request_exception=False)
    assert client.login(username="root", password=PASSWORD)
    return client


@pytest.fixture
def parked() -> str:
    """An execution waiting for its manager's approval."""
    start_parked("p-1")
    return "p-1"


def assert_refused(response: Any, status: int, field: str, *fragments: str) -> None:
    """A JSON answer with ``status`` whose ``field`` holds a message with every fragment."""
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    messages = body[field] if isinstance(body[field], list) else [body[field]]
    for fragment in fragments:
        assert any(fragment in m for m in messages), (fragment, messages)


def post_json(client: Client, url: str, body: Any) -> Any:
    text = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, text, content_type="application/json")


@pytest.mark.django_db
class TestEngine:
    @pytest.mark.parametrize("bad, why", BAD_IDS)
    def test_start_refuses_an_id_outside_the_alphabet(self, scheduler, bad, why):
        with pytest.raises(PayloadError, match="execution id") as refused:
            scheduler.start(bad, "no-input")
        assert why in str(refused.value)
        assert "1 to 200" in str(refused.value)
        assert stored() == (0, 0, 0, 0)

    def test_start_accepts_every_character_of_the_alphabet(self, scheduler):
        for good in ("Az09-_.:@+", "...", "x" * 200, "order:2026-11@eu+1"):
            assert scheduler.start(good, "no-input").id == good
        assert Execution.objects.count() == 4

    @pytest.mark.parametrize("bad, why", BAD_IDS)
    def test_offer_event_refuses_a_name_outside_the_alphabet(self, scheduler, parked, bad, why):
        before = stored()
        with pytest.raises(PayloadError, match="event name") as refused:
            scheduler.offer_event(parked, bad, {})
        assert why in str(refused.value)
        assert ALPHABET in str(refused.value) or "characters long" in str(refused.value)
        assert stored() == before

    @pytest.mark.parametrize("value, why", BAD_VALUES)
    def test_start_refuses_input_the_database_cannot_store(self, scheduler, value, why):
        with pytest.raises(PayloadError) as refused:
            scheduler.start("s-1", "no-input", value)
        assert str(refused.value) == f"input{why}"
        assert stored() == (0, 0, 0, 0)

    @pytest.mark.parametrize("value, why", BAD_VALUES)
    def test_offer_event_refuses_a_payload_the_database_cannot_store(
        self, scheduler, parked, value, why
    ):
        before = stored()
        with pytest.raises(PayloadError) as refused:
            scheduler.offer_event(parked, "other-event", value)
        assert str(refused.value) == f"payload of event 'other-event'{why}"
        assert stored() == before

    def test_offer_event_refuses_an_execution_id_no_database_can_hold(self, scheduler):
        with pytest.raises(PayloadError, match=r"execution id: contains a NUL character"):
            scheduler.offer_event("a\x00", "go", {})
        assert stored() == (0, 0, 0, 0)

    def test_a_step_result_the_database_cannot_store_fails_the_step_clearly(self):
        scheduler = DurableScheduler(NUL_RESULT)
        scheduler.start("r-1", "returns-a-nul", "ab")
        run_until_idle(NUL_RESULT)
        info = scheduler.get("r-1")
        assert info.status == "failed"
        assert "step 'returns-a-nul' failed after 1 attempt: PayloadError" in info.error
        assert (
            "result of step 'returns-a-nul': contains a NUL character (U+0000) at position 2"
            in (info.error)
        )
        assert info.steps[0].status == "failed"

    def test_nesting_up_to_the_bound_is_stored(self):
        assert encode(nested(MAX_DEPTH)) == nested(MAX_DEPTH)
        with pytest.raises(PayloadError, match=f"nested deeper than {MAX_DEPTH}"):
            encode(nested(MAX_DEPTH + 1))


@pytest.mark.django_db
class TestApi:
    @pytest.mark.parametrize("bad, why", BAD_IDS)
    def test_start_with_an_id_outside_the_alphabet_is_400(self, client, bad, why):
        body = {"task": "approval-task", "execution_id": bad, "input": REQUEST}
        response = post_json(client, "/api/executions/", body)
        assert_refused(response, 400, "execution_id")
        if bad:
            assert_refused(response, 400, "execution_id", why)
        assert stored() == (0, 0, 0, 0)

    @pytest.mark.parametrize("value, why", JSON_VALUES)
    def test_start_with_input_the_database_cannot_store_is_400(self, client, value, why):
        body = {"task": "approval-task", "execution_id": "s-1", "input": value}
        response = post_json(client, "/api/executions/", body)
        assert_refused(response, 400, "input")
        assert response.json()["input"] == [f"input{why}"]
        assert stored() == (0, 0, 0, 0)

    @pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900])
    def test_deeply_nested_input_is_400_naming_the_bound(self, client, levels):
        body = f'{{"task": "no-input", "execution_id": "s-1", "input": {nested_json(levels)}}}'
        response = post_json(client, "/api/executions/", body)
        assert_refused(response, 400, "input", f"nested deeper than {MAX_DEPTH} levels")
        assert stored() == (0, 0, 0, 0)

    def test_json_nested_too_deeply_to_parse_is_400(self, client, parked):
        before = stored()
        body = f'{{"payload": {nested_json(100_000)}}}'
        response = post_json(client, f"/api/executions/{parked}/events/other/", body)
        assert_refused(response, 400, "detail", "JSON parse error", "nested too deeply")
        assert stored() == before

    @pytest.mark.parametrize("value, why", JSON_VALUES)
    def test_an_event_payload_the_database_cannot_store_is_400(self, client, parked, value, why):
        before = stored()
        response = post_json(client, f"/api/executions/{parked}/events/other/", {"payload": value})
        assert_refused(response, 400, "payload")
        assert response.json()["payload"] == [f"payload{why}"]
        assert stored() == before

    @pytest.mark.parametrize(
        "name, why",
        [
            ("a%00", "(U+0000) at position 1"),
            ("a%20b", "(U+0020) at position 1"),
            ("..", "cannot be '..'"),
            ("x" * 201, "not 201"),
        ],
    )
    def test_an_event_name_outside_the_alphabet_is_400(self, client, parked, name, why):
        before = stored()
        response = post_json(client, f"/api/executions/{parked}/events/{name}/", {"payload": 1})
        assert_refused(response, 400, "event", "event name", why, ALPHABET)
        assert stored() == before

    @pytest.mark.parametrize(
        "method, url",
        [
            ("get", "/api/executions/a%00/"),
            ("post", "/api/executions/a%00/cancel/"),
            ("post", "/api/executions/a%00/events/go/"),
            ("get", "/api/approvals/a%00/"),
            ("post", "/api/approvals/a%00/decide/"),
        ],
    )
    def test_an_id_with_a_nul_in_the_path_is_400(self, client, parked, method, url):
        before = stored()
        response = getattr(client, method)(url, {"approved": True}, content_type="application/json")
        assert_refused(response, 400, "execution_id", "NUL character (U+0000) at position 1")
        assert stored() == before

    @pytest.mark.parametrize("segment", [".", "..", "a%ED%A0%80", "x" * 201, "a%2Fb"])
    def test_an_id_that_names_no_execution_is_404(self, client, segment):
        for url in (f"/api/executions/{segment}/", f"/api/approvals/{segment}/"):
            response = client.get(url)
            assert response.status_code == 404, (url, response.content[:200])
            if segment != "a%2Fb":  # "a/b" matches no API route: the project's own 404 page
                assert response["Content-Type"] == "application/json"

    @pytest.mark.parametrize(
        "query, field",
        [
            ("status=%00", "status"),
            ("task=a%00", "task"),
            ("page=%00", "page"),
            ("page_size=1%00", "page_size"),
            ("a%00=1", "query"),
        ],
    )
    def test_a_nul_in_a_query_parameter_is_400(self, client, parked, query, field):
        for url in (f"/api/executions/?{query}", f"/api/approvals/?{query}"):
            assert_refused(client.get(url), 400, field, "NUL character (U+0000)")

    def test_a_body_over_the_upload_limit_is_a_json_400(self, client, settings):
        settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
        body = {"task": "approval-task", "execution_id": "big", "input": {"x": "y" * 2000}}
        response = post_json(client, "/api/executions/", body)
        assert_refused(response, 400, "detail", "DATA_UPLOAD_MAX_MEMORY_SIZE")
        assert stored() == (0, 0, 0, 0)

    def test_a_form_with_too_many_fields_is_a_json_400(self, client, settings):
        settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 5
        form = "&".join(f"f{i}=1" for i in range(10))
        response = client.post(
            "/api/executions/", form, content_type="application/x-www-form-urlencoded"
        )
        assert_refused(response, 400, "detail", "DATA_UPLOAD_MAX_NUMBER_FIELDS")
        assert stored() == (0, 0, 0, 0)

    @pytest.mark.parametrize(
        "body, content_type, status, fragment",
        [
            ('{"task": "no-input", "execution_id": "s-1"', "application/json", 400, "JSON parse"),
            (b'{"task": "\xff"}', "application/json", 400, "JSON parse"),
            ('{"task": "no-input", "execution_id": NaN}', "application/json", 400, "JSON parse"),
            ("<task/>", "application/xml", 415, "Unsupported media type"),
            (b"{}", "application/json; charset=bz2_codec", 400, "Unsupported charset"),
        ],
    )
    def test_any_other_unreadable_body_is_a_json_error(
        self, client, body, content_type, status, fragment
    ):
        response = client.generic("POST", "/api/executions/", body, content_type=content_type)
        assert_refused(response, status, "detail", fragment)
        assert stored() == (0, 0, 0, 0)

    def test_a_json_string_field_in_a_form_is_checked_too(self, client, parked):
        before = stored()
        response = client.post(f"/api/executions/{parked}/events/other/", {"payload": '"a\\u0000"'})
        assert_refused(response, 400, "payload", "NUL character")
        assert stored() == before


@pytest.mark.django_db
class TestInboxAndAdmin:
    def test_inbox_urls_with_a_nul_are_404_and_decide_nothing(self, client, parked):
        before = stored()
        assert client.get("/approvals/requests/p-1%00/").status_code == 404
        response = client.post("/approvals/requests/p-1%00/decide/", {"decision": "approve"})
        assert response.status_code == 404
        assert stored() == before

    @pytest.mark.parametrize(
        "url",
        [
            "/admin/zart_django/execution/p-1%00/change/",
            "/admin/zart_django/execution/p-1%00/delete/",
            "/admin/zart_django/execution/p-1%00/history/",
            "/admin/zart_django/execution/?q=%00",
            "/admin/zart_django/execution/?status=%00",
            "/admin/zart_django/execution/?task_name=a%00",
            "/admin/zart_approvals/approvalrequest/?event=%00",
            "/admin/zart_approvals/approvalrecord/?q=%00",
        ],
    )
    def test_admin_pages_with_a_nul_answer_as_for_anything_not_found(self, client, parked, url):
        response = client.get(url, follow=True)
        assert response.status_code == 200
        assert response.redirect_chain, "the admin redirects to its own error answer"

    def test_an_admin_decision_posted_on_an_id_with_a_nul_is_refused(self, client, parked):
        before = stored()
        response = client.post(
            "/admin/zart_django/execution/p-1%00/decide/", {"decision": "approve"}, follow=True
        )
        assert response.status_code == 200
        assert "Not decided: execution id: contains a NUL character" in response.content.decode()
        assert stored() == before

    def test_the_admin_decides_an_execution_whose_id_it_escapes(self, client):
        start_parked("order_1:eu@x+y")
        listing = client.get("/admin/zart_django/execution/").content.decode()
        assert "/admin/zart_django/execution/order_5F1_3Aeu_40x_2By/change/" in listing
        page = client.get("/admin/zart_django/execution/order_5F1_3Aeu_40x_2By/change/")
        assert 'value="approve"' in page.content.decode()
        response = client.post(
            "/admin/zart_django/execution/order_5F1_3Aeu_40x_2By/decide/",
            {"decision": "approve"},
            follow=True,
        )
        assert "Approved order_1:eu@x+y" in response.content.decode()
        assert ApprovalRecord.objects.get().execution_id == "order_1:eu@x+y"


def insert_as_an_older_version_did(execution_id: str) -> None:
    """Write an execution row the way versions before the id alphabet could, and run it until it
    waits for its approval: the rows are as real as any, only the id breaks today's rules."""
    now = timezone.now()
    Execution.objects.create(
        id=execution_id,
        task_name="approval-task",
        input=REQUEST,
        scheduled_at=now,
        created_at=now,
        updated_at=now,
    )
    run_until_idle()
    assert DurableScheduler().get(execution_id).waiting_on == "approval:manager-approval"


@pytest.mark.django_db
class TestRowsStoredByOlderVersions:
    LEGACY_IDS = ["old/1", "..", "old 2", "100%"]

    def test_they_do_not_break_the_lists_and_each_one_opens_and_decides(self, client):
        start_parked("today")
        for execution_id in self.LEGACY_IDS:
            insert_as_an_older_version_did(execution_id)
        inbox = client.get("/approvals/")
        assert inbox.status_code == 200
        opened = links(inbox, "/approvals/requests/")
        assert len(opened) == len(self.LEGACY_IDS) + 1
        for link in opened:
            page = client.get(link)
            assert page.status_code == 200, link
            assert 'value="approve"' in page.content.decode()
            decided = client.post(f"{link}decide/", {"decision": "approve"})
            assert decided.status_code == 302, link
        decided_ids = set(ApprovalRecord.objects.values_list("execution_id", flat=True))
        assert decided_ids == {"today", *self.LEGACY_IDS}
        assert client.get("/approvals/history/").status_code == 200
        admin_list = client.get("/admin/zart_django/execution/")
        assert admin_list.status_code == 200
        assert "/admin/zart_django/execution/old_2F1/change/" in links(admin_list, "/admin/")
        admin_page = client.get("/admin/zart_django/execution/old_2F1/change/")
        assert "Approved</strong> by" in admin_page.content.decode()
        listed = client.get("/api/executions/")
        assert listed.status_code == 200
        assert {e["id"] for e in listed.json()["results"]} == {"today", *self.LEGACY_IDS}

    def test_a_lone_surrogate_stored_in_json_is_shown_not_a_500(self, client):
        if connection.vendor != "sqlite":
            pytest.skip("PostgreSQL refuses a lone surrogate in jsonb: no version stored one")
        now = timezone.now()
        execution = Execution.objects.create(
            id="old-3",
            task_name="approval-task",
            status="completed",
            input={**REQUEST, "requester_name": "Bob\ud800"},
            output={"decision": "approved\udfff"},
            created_at=now,
            updated_at=now,
            finished_at=now,
        )
        StepResult.objects.create(
            execution=execution,
            position=0,
            name="validate-request",
            status="completed",
            result="ok \ud800",
            started_at=now,
            finished_at=now,
        )
        listed = client.get("/api/executions/")
        assert listed.status_code == 200
        assert listed.json()["results"][0]["input"]["requester_name"] == "Bob\ufffd"
        detail = client.get("/api/executions/old-3/")
        assert detail.status_code == 200
        assert detail.json()["steps"][0]["result"] == "ok \ufffd"
        page = client.get("/admin/zart_django/execution/old-3/change/")
        assert page.status_code == 200
        assert "Bob\ufffd" in page.content.decode()
        assert client.get("/admin/zart_django/execution/").status_code == 200


class _Links(HTMLParser):
    """The targets of the links in a page that start with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href") or ""
        if tag == "a" and href.startswith(self.prefix) and href != self.prefix:
            self.found.append(href)


def links(response: Any, prefix: str) -> list[str]:
    parser = _Links(prefix)
    parser.feed(response.content.decode())
    return parser.found


class TestWorkerArguments:
    @pytest.mark.parametrize(
        "args, message",
        [
            (["--batch-size", "-1"], "argument --batch-size: must be at least 1, not -1"),
            (["--batch-size", "0"], "argument --batch-size: must be at least 1, not 0"),
            (["--concurrency", "-2"], "argument --concurrency: must be at least 1, not -2"),
            (["--concurrency", "1.5"], "argument --concurrency: must be a whole number"),
            (["--poll-interval", "0"], "argument --poll-interval: must be a number of seconds"),
            (["--poll-interval", "-1"], "above 0, not -1"),
            (["--poll-interval", "nan"], "above 0, not nan"),
            (["--poll-interval", "soon"], "must be a number of seconds, not 'soon'"),
        ],
    )
    def test_bad_arguments_exit_2_with_a_clear_message(self, args, message):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
        done = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "run_zart_worker", "--once", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2
        assert message in done.stderr
        assert "Traceback" not in done.stderr


@durable("waits-on-a-bad-name")
def waits_on_a_bad_name() -> str:
    return wait_for_event("order paid")


@pytest.mark.django_db
class TestInsideDurableFunctions:
    def test_a_wait_on_a_name_no_event_can_have_fails_at_once_saying_why(self):
        DurableScheduler().start("bad-wait", "waits-on-a-bad-name")
        run_until_idle()
        info = DurableScheduler().get("bad-wait")
        assert info.status == "failed"
        assert "event name" in info.error and "(U+0020)" in info.error

    @pytest.mark.parametrize("call", ["get", "cancel", "wait_completion"])
    def test_reading_or_cancelling_a_nul_id_from_code_is_a_payload_error(self, call):
        with pytest.raises(PayloadError, match="U\\+0000"):
            getattr(DurableScheduler(), call)("a\x00b")

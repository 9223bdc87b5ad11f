"""Issue 10, the manager's screens: deadlines, filters and counts in the inbox, the request page's
story, the history's filters and its CSV export, at a constant number of queries, in German too."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.approval_helpers import REQUEST, logged_in, make_user, park_many, start_parked
from zart_django import DurableScheduler
from zart_django.approvals import decide
from zart_django.approvals.export import inert
from zart_django.approvals.models import ApprovalRequest
from zart_django.clock import now
from zart_django.models import StepResult
from zart_django.testing import run_until_idle

pytestmark = pytest.mark.django_db

DECIDE = "zart_approvals.decide_approval"


def page(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return response.content.decode()


def count_queries(fetch) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as captured:
        result = fetch()
    return len(captured), result


def set_deadline(execution_id: str, deadline) -> None:
    ApprovalRequest.objects.filter(execution_id=execution_id).update(deadline=deadline)


class TestDeadline:
    def test_the_request_carries_its_waits_deadline(self):
        start_parked("dl-1")
        request = ApprovalRequest.objects.get(execution_id="dl-1")
        wait = StepResult.objects.get(execution_id="dl-1", name="approval:manager-approval")
        assert request.deadline is not None
        assert timedelta(0) <= wait.deadline - request.deadline < timedelta(seconds=5)
        assert (
            timedelta(seconds=119) < request.deadline - request.created_at <= timedelta(seconds=120)
        )

    def test_the_inbox_sorts_by_deadline_with_none_last_and_says_when(self, manager):
        for execution_id in ("late", "none", "soon", "overdue"):
            start_parked(execution_id)
        set_deadline("late", now() + timedelta(hours=3, minutes=30))
        set_deadline("none", None)
        set_deadline("soon", now() + timedelta(minutes=20, seconds=30))
        set_deadline("overdue", now() - timedelta(minutes=1))
        html = page(logged_in(manager), "/approvals/")
        order = sorted(("late", "none", "soon", "overdue"), key=lambda e: html.index(f">{e}<"))
        assert order == ["overdue", "soon", "late", "none"]
        assert "expires in 3 h" in html and "expires in 20 min" in html
        assert '<span class="expiry overdue"' in html and ">overdue</span>" in html

    def test_a_detail_page_shows_the_deadline(self, manager):
        start_parked("dl-2")
        set_deadline("dl-2", now() + timedelta(days=3, hours=1))
        html = page(logged_in(manager), "/approvals/requests/dl-2/")
        assert "Deadline" in html and "expires in 3 d" in html


class TestInbox:
    def test_filter_by_task_and_search_title_id_and_summary(self, manager):
        from demo_project.approval.workflows import ApprovalRequest as Ask
        from demo_project.approval.workflows import access_request

        start_parked("find-a", Ask("Zoe", "the red printer", "Posters for the fair"))
        start_parked("find-b")
        DurableScheduler().start_for(access_request, "find-c", Ask("Yan", "a laptop", "Travel"))
        run_until_idle()
        client = logged_in(manager)

        def listed(query: str) -> set[str]:
            html = page(client, f"/approvals/?{query}")
            return {e for e in ("find-a", "find-b", "find-c") if f">{e}<" in html}

        assert listed("") == {"find-a", "find-b", "find-c"}
        assert listed("task=access-request") == {"find-c"}
        assert listed("q=red+printer") == {"find-a"}  # the title
        assert listed("q=FIND-B") == {"find-b"}  # the execution id, any case
        assert listed("q=posters") == {"find-a"}  # the summary
        assert listed("task=approval-task&q=zoe") == {"find-a"}
        assert "No open request matches these filters." in page(client, "/approvals/?q=nothing")
        assert listed("task=no-such-task") == {"find-a", "find-b", "find-c"}  # refused, shown

    def test_the_navigation_counts_my_open_requests(self, manager, clerk):
        park_many("nav", 3)
        assert '<span class="count"' in page(logged_in(manager), "/approvals/history/")
        html = page(logged_in(manager), "/approvals/history/")
        assert "3 requests waiting for you" in html
        assert '<span class="count"' not in page(logged_in(clerk), "/approvals/")

    def test_filters_survive_the_pages(self, manager):
        park_many("pg", 51)
        html = page(logged_in(manager), "/approvals/?q=pg")
        assert "?q=pg&amp;page=2" in html

    @pytest.mark.parametrize("url", ["/approvals/", "/approvals/?task=approval-task&q=Bob"])
    def test_a_page_costs_the_same_queries_for_5_and_50_requests(self, manager, url):
        client = logged_in(manager)
        park_many("few", 5)
        few, html = count_queries(lambda: page(client, url))
        assert html.count('href="/approvals/requests/') == 5
        park_many("many", 45)
        many, html = count_queries(lambda: page(client, url))
        assert html.count('href="/approvals/requests/') == 50
        assert many == few, f"{few} queries for 5 requests, {many} for 50"


class TestRequestPage:
    def test_it_tells_the_input_the_timeline_and_the_earlier_decisions(self, manager):
        start_parked("story-1")
        client = logged_in(manager)
        html = page(client, "/approvals/requests/story-1/")
        assert "requester name: Bob" in html and "resource: staging-environment" in html
        assert "Step “validate-request”" in html
        assert "Approval “manager-approval”" in html and ">waiting<" in html
        assert "Earlier decisions" not in html

        decide("story-1", manager, approved=False, comment="not this week")
        run_until_idle()
        DurableScheduler().rerun("story-1", from_step="validate-request")
        run_until_idle()
        html = page(client, "/approvals/requests/story-1/")
        assert 'value="approve"' in html  # the new run asks again
        assert "Earlier decisions" in html and "not this week" in html
        assert "manager-approval, run 1" in html
        assert ">completed<" in html


class TestHistory:
    @pytest.fixture
    def decided(self, manager):
        carol = make_user("carol", DECIDE, full_name="Carol Boss")
        ids = park_many("h", 4)
        decide(ids[0], manager, approved=True, comment="=HYPERLINK(1)")
        decide(ids[1], carol, approved=False, comment="-nope")
        DurableScheduler().cancel(ids[2])
        return ids

    def listed(self, client, query: str) -> set[str]:
        html = page(client, f"/approvals/history/?{query}")
        return {e for e in ("h-0", "h-1", "h-2", "h-3") if f">{e}<" in html}

    def test_filter_by_reviewer_outcome_task_and_days(self, manager, decided):
        client = logged_in(manager)
        assert self.listed(client, "") == {"h-0", "h-1", "h-2"}
        assert self.listed(client, "reviewer=carol") == {"h-1"}
        assert self.listed(client, "reviewer=Alice+Man") == {"h-0"}
        assert self.listed(client, "outcome=approved") == {"h-0"}
        assert self.listed(client, "outcome=rejected") == {"h-1"}
        assert self.listed(client, "outcome=closed") == {"h-2"}
        assert self.listed(client, "outcome=expired") == set()
        assert self.listed(client, "task=approval-task") == {"h-0", "h-1", "h-2"}
        today = now().date()
        assert self.listed(client, f"since={today}&until={today}") == {"h-0", "h-1", "h-2"}
        yesterday = today - timedelta(days=1)
        assert self.listed(client, f"until={yesterday}") == set()

    def test_the_csv_export_streams_the_decisions_with_formulas_made_inert(self, manager, decided):
        response = logged_in(manager).get("/approvals/history.csv")
        assert response.status_code == 200 and response.streaming
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert [(r["execution_id"], r["outcome"], r["reviewer"]) for r in rows] == [
            ("h-1", "rejected", "carol"),
            ("h-0", "approved", "alice"),
        ]
        assert rows[1]["comment"] == "'=HYPERLINK(1)" and rows[0]["comment"] == "'-nope"
        assert rows[1]["reviewer_name"] == "Alice Manager" and rows[1]["source"] == "code"

    def test_the_csv_export_takes_the_filters_and_refuses_bad_ones(self, manager, decided):
        client = logged_in(manager)
        body = b"".join(client.get("/approvals/history.csv?reviewer=carol").streaming_content)
        assert b"h-1" in body and b"h-0" not in body
        body = b"".join(client.get("/approvals/history.csv?outcome=expired").streaming_content)
        assert body.decode().strip().splitlines() == [body.decode().splitlines()[0]]
        refused = client.get("/approvals/history.csv?since=yesterday")
        assert refused.status_code == 400 and b"since" in refused.content

    def test_the_csv_export_holds_only_what_the_user_may_see(self, manager, decided, clerk):
        ApprovalRequest.objects.filter(execution_id="h-3").update(
            permission="zart_django.change_execution"
        )
        boss = make_user("boss", "zart_django.change_execution")
        decide("h-3", boss, approved=True)
        mine = b"".join(logged_in(manager).get("/approvals/history.csv").streaming_content)
        assert b"h-0" in mine and b"h-3" not in mine
        assert b"h-" not in b"".join(
            logged_in(clerk).get("/approvals/history.csv").streaming_content
        )
        viewer = make_user("viewer", "zart_django.view_execution")
        every = b"".join(logged_in(viewer).get("/approvals/history.csv").streaming_content)
        assert all(e in every for e in (b"h-0", b"h-1", b"h-3"))

    def test_the_csv_export_needs_a_login(self):
        assert self.client_get_anonymous("/approvals/history.csv").status_code == 302

    @staticmethod
    def client_get_anonymous(url: str):
        from django.test import Client

        return Client().get(url)

    def test_the_csv_export_costs_the_same_queries_for_5_and_50_decisions(self, manager):
        client = logged_in(make_user("reader", DECIDE))

        def export() -> int:
            body = b"".join(client.get("/approvals/history.csv").streaming_content)
            return body.count(b"\n") - 1

        for execution_id in park_many("few", 5):
            decide(execution_id, manager, approved=True)
        few, rows = count_queries(export)
        assert rows == 5
        for execution_id in park_many("many", 45):
            decide(execution_id, manager, approved=False)
        many, rows = count_queries(export)
        assert rows == 50
        assert many == few, f"{few} queries for 5 decisions, {many} for 50"

    def test_the_filtered_history_costs_the_same_queries_for_5_and_50(self, manager):
        client = logged_in(manager)
        url = "/approvals/history/?reviewer=alice&outcome=approved&task=approval-task"
        for execution_id in park_many("few", 5):
            decide(execution_id, manager, approved=True)
        few, html = count_queries(lambda: page(client, url))
        assert html.count('href="/approvals/requests/') == 5
        for execution_id in park_many("many", 45):
            decide(execution_id, manager, approved=True)
        many, html = count_queries(lambda: page(client, url))
        assert html.count('href="/approvals/requests/') == 50
        assert many == few, f"{few} queries for 5 requests, {many} for 50"


@pytest.mark.parametrize(
    "cell, written",
    [
        ("=1+1", "'=1+1"),
        ("+49 30", "'+49 30"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("fine = ok", "fine = ok"),
        (None, ""),
        (3, "3"),
    ],
)
def test_cells_that_start_like_a_formula_are_made_inert(cell, written):
    assert inert(cell) == written


class TestGerman:
    def test_the_inbox_and_the_request_page_speak_german(self, manager):
        start_parked("de-1")
        set_deadline("de-1", now() + timedelta(hours=3, minutes=30))
        client = logged_in(manager)
        inbox = client.get("/approvals/", HTTP_ACCEPT_LANGUAGE="de").content.decode()
        assert '<html lang="de">' in inbox
        assert "Wartet auf Ihre Entscheidung" in inbox and "Verlauf" in inbox
        assert "läuft ab in 3 Std." in inbox
        detail = client.get("/approvals/requests/de-1/", HTTP_ACCEPT_LANGUAGE="de").content
        detail = detail.decode()
        assert "Genehmigen" in detail and "Ablehnen" in detail
        assert "Was der Ablauf bisher getan hat" in detail and "wartet" in detail
        response = client.post(
            "/approvals/requests/de-1/decide/",
            {"decision": "approve"},
            HTTP_ACCEPT_LANGUAGE="de",
            follow=True,
        )
        assert "de-1 genehmigt." in response.content.decode()

    def test_english_stays_the_default(self, manager):
        start_parked("en-1")
        html = page(logged_in(manager), "/approvals/")
        assert '<html lang="en">' in html and "Waiting for your decision" in html
        assert REQUEST.requester_name in html

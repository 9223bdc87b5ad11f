"""Issue 12, big tables: the admin's execution list, the inbox and ``GET /api/executions/`` never
count a whole table nor ask it for its distinct values, cost the same queries however many rows
there are, and page without gaps or repeats (the API by keyset, the id breaking ties)."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from bench import inbox
from tests.approval_helpers import PASSWORD, group_member, make_user, park_many
from zart_django.admin import ExecutionAdmin
from zart_django.api.pagination import Pagination
from zart_django.api.views import ORDERINGS
from zart_django.approvals import decide, views
from zart_django.approvals.templatetags import zart_approvals
from zart_django.models import Execution, Status
from zart_django.registry import default_registry

pytestmark = pytest.mark.django_db

DECIDE = "zart_approvals.decide_approval"
COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)
REQUESTS_TABLE = "zart_approvals_approvalrequest"
ASSIGNEES_TABLE = "zart_approvals_approvalassignee"
HASHED = re.compile(r"hashed (SubPlan \d+)")


def add_executions(count: int, prefix: str = "x", same_time: bool = False) -> list[str]:
    """``count`` executions, finished and not, of three tasks, created a second apart (or all at
    one moment), a third of them with no ``finished_at``."""
    now = timezone.now()
    rows = [
        Execution(
            id=f"{prefix}-{i:04d}",
            task_name=f"task-{i % 3}",
            status=Status.WAITING if i % 3 == 0 else Status.COMPLETED,
            created_at=now if same_time else now - timedelta(seconds=i),
            updated_at=now,
            finished_at=None if i % 3 == 0 else now - timedelta(seconds=i % 4),
        )
        for i in range(count)
    ]
    Execution.objects.bulk_create(rows)
    return [row.id for row in rows]


def captured(client: Client | APIClient, url: str) -> tuple[list[str], object]:
    """The SQL ``client.get(url)`` ran (it must answer 200), and its answer."""
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200, response.content[:500]
    return [q["sql"] for q in queries.captured_queries], response


def assert_no_table_scan_for_totals(sql: list[str]) -> None:
    """Every count reads a bounded subquery (LIMIT); nothing asks for distinct values."""
    for statement in sql:
        if COUNT.search(statement):
            assert "LIMIT" in statement.upper(), statement
        assert "DISTINCT" not in statement.upper(), statement


def query_plan(sql: str) -> list[str]:
    """SQLite's plan for ``sql``: one line per table it reads and how (``SCAN`` or ``SEARCH``
    with the index and the columns it looks up)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN QUERY PLAN {sql}")
        return [row[-1] for row in cursor.fetchall()]


def postgres_plan(sql: str) -> dict:
    """PostgreSQL's plan for ``sql`` (``EXPLAIN (FORMAT JSON)``), its top node."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        document = cursor.fetchone()[0]
    return (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]


def hashed_reads(plan: dict, table: str) -> bool:
    """Whether a subplan that ``plan`` hashes reads ``table``: a hashed subplan reads its
    subquery whole, once, however few rows the statement asks for (the plan says "hashed
    SubPlan N" where it uses one)."""
    hashed = set(HASHED.findall(json.dumps(plan)))

    def reads(node: dict, inside: bool) -> bool:
        inside = inside or node.get("Subplan Name") in hashed
        if inside and node.get("Relation Name") == table:
            return True
        return any(reads(child, inside) for child in node.get("Plans", []))

    return reads(plan, False)


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password=PASSWORD))
    return client


@pytest.fixture
def api() -> APIClient:
    client = APIClient()
    client.force_authenticate(User.objects.create_superuser("api-root", password=PASSWORD))
    return client


@pytest.fixture
def small_bound(monkeypatch) -> int:
    """The admin's list counts at most 150 rows, so that tests cross the bound with few rows."""
    monkeypatch.setattr(ExecutionAdmin, "count_bound", 150)
    return 150


class TestAdminList:
    URL = "/admin/zart_django/execution/"

    def test_the_same_queries_for_a_few_rows_as_for_many_and_no_whole_table_count(
        self, admin_client, small_bound
    ):
        add_executions(160, "few")
        few, _ = captured(admin_client, self.URL)
        add_executions(300, "many")
        many, page = captured(admin_client, self.URL)
        assert len(few) == len(many)
        assert_no_table_scan_for_totals(many)
        assert page.content.decode().count('class="action-select"') == 100

    def test_the_task_filter_offers_the_registered_tasks_and_filters(self, admin_client):
        add_executions(6)
        html = admin_client.get(self.URL).content.decode()
        for name in default_registry.names():
            assert f"?task_name={name}" in html
        sql, page = captured(admin_client, f"{self.URL}?task_name=task-1")
        assert page.content.decode().count('class="action-select"') == 2
        assert_no_table_scan_for_totals(sql)

    def test_the_created_filter_offers_days_without_a_query_and_filters(self, admin_client):
        add_executions(4)
        Execution.objects.filter(pk="x-0003").update(created_at=timezone.now() - timedelta(days=40))
        html = admin_client.get(self.URL).content.decode()
        assert "Past 7 days" in html
        since = urlencode({"created_at__gte": timezone.now() - timedelta(days=7)})
        page = admin_client.get(f"{self.URL}?{since}").content.decode()
        assert page.count('class="action-select"') == 3

    def test_a_page_past_the_bound_is_reachable_and_holds_the_following_rows(
        self, admin_client, small_bound
    ):
        ids = add_executions(250)
        page3 = admin_client.get(f"{self.URL}?p=3").content.decode()
        assert f"{ids[200]}/change/" in page3 and f"{ids[249]}/change/" in page3
        assert f"{ids[199]}/change/" not in page3

    def test_the_waiting_for_approval_mark_and_filter_read_the_page_only(self, admin_client):
        park_many("wait", 3)
        add_executions(5)
        sql, page = captured(admin_client, self.URL)
        assert page.content.decode().count("<strong>approval</strong>") == 3
        assert not any("EXISTS" in s.upper() for s in sql)
        waiting = admin_client.get(f"{self.URL}?approval=waiting").content.decode()
        assert waiting.count('class="action-select"') == 3

    @pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite plans without statistics; PostgreSQL has them"
    )
    def test_the_approval_mark_looks_up_the_page_ids_not_every_open_request(self, admin_client):
        park_many("wait", 5)
        add_executions(5)
        sql, page = captured(admin_client, self.URL)
        assert page.content.decode().count("<strong>approval</strong>") == 5
        reads = [line for s in sql for line in query_plan(s) if REQUESTS_TABLE in line]
        assert reads
        for line in reads:
            assert "(execution_id=?" in line, line


class TestInbox:
    def test_the_header_says_99_plus_and_the_page_count_is_bounded(self, monkeypatch):
        monkeypatch.setattr(zart_approvals, "OPEN_COUNT_BOUND", 3)
        monkeypatch.setattr(views, "COUNT_BOUND", 2 * views.PAGE_SIZE)
        manager = make_user("boss", DECIDE)
        client = Client()
        client.force_login(manager)
        park_many("few", 2)
        few, page = captured(client, "/approvals/")
        assert '<span class="count"' in page.content.decode()
        assert ">2</span>" in page.content.decode()
        park_many("many", 2 * views.PAGE_SIZE + 5)
        many, page = captured(client, "/approvals/")
        html = page.content.decode()
        assert ">3+</span>" in html
        assert f"({2 * views.PAGE_SIZE}+)" in html
        assert "or more" in html and ">Last" not in html
        assert len(few) == len(many)
        assert_no_table_scan_for_totals(many)
        last = client.get("/approvals/?page=3").content.decode()
        assert last.count('href="/approvals/requests/') == 7

    @pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="PostgreSQL's planner may hash a subquery; SQLite tests EXISTS row by row",
    )
    @pytest.mark.parametrize("url", ["/approvals/", "/api/approvals/"])
    def test_a_page_reads_the_assignees_of_the_requests_it_reads_not_the_whole_table(self, url):
        """With statistics that say most open requests have assignees, PostgreSQL hashed the
        whole assignees' table for each of the page's queries (its cost grew with the table:
        121 ms against 44 for the same page at 100,000 and 10,000 open requests)."""
        inbox.load(0, 10_000)
        manager = group_member(inbox.MANAGER, DECIDE, group=inbox.GROUP)
        client = APIClient() if url.startswith("/api/") else Client()
        client.force_login(manager)
        sql, _ = captured(client, url)
        reading = [statement for statement in sql if ASSIGNEES_TABLE in statement]
        assert reading
        for statement in reading:
            assert not hashed_reads(postgres_plan(statement), ASSIGNEES_TABLE), statement

    def test_the_task_filter_offers_the_registered_tasks(self):
        client = Client()
        client.force_login(make_user("boss", DECIDE))
        html = client.get("/approvals/").content.decode()
        for name in default_registry.names():
            assert f'<option value="{name}"' in html


class TestHistory:
    @pytest.mark.skipif(
        connection.vendor != "sqlite", reason="SQLite plans without statistics; PostgreSQL has them"
    )
    def test_the_page_walks_the_requests_newest_first_by_index_instead_of_sorting_all(self):
        manager = make_user("boss", DECIDE)
        for execution_id in park_many("done", 4):
            decide(execution_id, manager, approved=True)
        client = Client()
        client.force_login(manager)
        sql, page = captured(client, "/approvals/history/")
        assert page.content.decode().count('href="/approvals/requests/done-') == 4
        ordered = [s for s in sql if REQUESTS_TABLE in s and "ORDER BY" in s.upper()]
        assert ordered
        for statement in ordered:
            plan = query_plan(statement)
            assert "USE TEMP B-TREE FOR ORDER BY" not in plan, plan


def all_pages(api: APIClient, url: str) -> list[str]:
    """The ids of every page of ``url``, following ``next``."""
    ids: list[str] = []
    while url:
        body = api.get(url).json()
        assert "count" not in body
        ids += [row["id"] for row in body["results"]]
        url = body["next"]
    return ids


def in_order(ordering: str) -> list[str]:
    """The executions' ids as ``ordering`` sorts them, sorted in Python: the field (its empty
    values last), then the id, both the same way."""
    field, descending = ordering.lstrip("-"), ordering.startswith("-")
    rows = list(Execution.objects.all())
    present = [r for r in rows if getattr(r, field) is not None]
    empty = [r for r in rows if getattr(r, field) is None]
    present.sort(key=lambda r: (getattr(r, field), r.id), reverse=descending)
    empty.sort(key=lambda r: r.id, reverse=descending)
    return [r.id for r in present + empty]


class TestApiKeyset:
    URL = "/api/executions/"

    @pytest.mark.parametrize("ordering", list(ORDERINGS))
    @pytest.mark.parametrize("same_time", [True, False])
    def test_pages_follow_each_other_without_gaps_or_repeats(self, api, ordering, same_time):
        add_executions(23, same_time=same_time)
        ids = all_pages(api, f"{self.URL}?ordering={ordering}&page_size=4")
        assert ids == in_order(ordering)

    def test_filters_are_kept_across_pages(self, api):
        add_executions(30)
        ids = all_pages(api, f"{self.URL}?task=task-1&status=completed&page_size=3")
        assert ids == [i for i in in_order("-created_at") if int(i[-4:]) % 3 == 1]

    def test_the_same_queries_for_a_few_rows_as_for_many(self, api):
        add_executions(5, "few")
        few, _ = captured(api, self.URL)
        add_executions(300, "many")
        many, body = captured(api, self.URL)
        second, _ = captured(api, body.json()["next"])
        assert len(few) == len(many) == len(second)
        for sql in (many, second):
            assert not any(COUNT.search(s) or "OFFSET" in s.upper() for s in sql)

    def test_the_last_page_has_no_next(self, api):
        add_executions(4)
        assert api.get(f"{self.URL}?page_size=4").json()["next"] is None


def token(key: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


class TestHostileCursors:
    URL = "/api/executions/"

    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "not base64!",
            "%00",
            "%FF%FE",
            "é",
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
            base64.urlsafe_b64encode(b"not json").decode(),
            token([1, 2]),
            token({"o": "-created_at", "v": "2026-01-01T00:00:00+00:00"}),
            token({"o": "-created_at", "v": "yesterday", "id": "x"}),
            token({"o": "-created_at", "v": "2026-01-01T00:00:00", "id": "x"}),
            token({"o": "-created_at", "v": "2026-13-45T00:00:00+00:00", "id": "x"}),
            token({"o": "-created_at", "v": None, "id": "x"}),
            token({"o": "-created_at", "v": 5, "id": "x"}),
            token({"o": "-created_at", "v": "2026-01-01T00:00:00+00:00", "id": 5}),
            token({"o": "-created_at", "v": "2026-01-01T00:00:00+00:00", "id": "a\x00b"}),
            token({"o": "status", "v": "done", "id": "x"}),
            token({"o": "-created_at", "v": "9" * 5000, "id": "x"}),
            "A" * 10_000,
            base64.urlsafe_b64encode(b"[" * 1400 + b"]" * 1400).decode()[:2000],
            token({"o": "-created_at", "v": "2026-01-01T00:00:00+00:00", "id": "\ud800"}),
        ],
    )
    def test_a_cursor_the_api_did_not_give_is_a_400_naming_it(self, api, cursor):
        add_executions(3)
        response = api.get(f"{self.URL}?cursor={cursor}")
        assert response.status_code == 400, response.content[:300]
        assert "cursor" in response.json()

    def test_a_cursor_of_another_ordering_is_refused_naming_both(self, api):
        add_executions(3)
        next_link = api.get(f"{self.URL}?page_size=1").json()["next"]
        response = api.get(next_link.replace("page_size=1", "page_size=1&ordering=id"))
        assert response.status_code == 400
        assert "'-created_at'" in response.json()["cursor"][0]

    def test_a_cursor_with_a_nul_in_the_query_is_refused(self, api):
        assert api.get(f"{self.URL}?cursor=a%00").status_code == 400

    def test_finished_at_cursors_cross_from_dates_to_empty_values(self, api):
        add_executions(9)
        ids = all_pages(api, f"{self.URL}?ordering=finished_at&page_size=2")
        assert ids == in_order("finished_at")


class TestApprovalsApi:
    URL = "/api/approvals/"

    @pytest.fixture
    def manager(self) -> APIClient:
        client = APIClient()
        client.force_authenticate(make_user("boss", DECIDE))
        return client

    def test_the_count_reads_a_bounded_number_of_rows_and_says_when_it_stopped(
        self, manager, monkeypatch
    ):
        monkeypatch.setattr(Pagination, "count_bound", 6)
        park_many("few", 4)
        few, body = captured(manager, f"{self.URL}?page_size=2")
        assert (body.json()["count"], body.json()["count_exact"]) == (4, True)
        park_many("many", 8)
        many, body = captured(manager, f"{self.URL}?page_size=2")
        assert (body.json()["count"], body.json()["count_exact"]) == (6, False)
        assert len(few) == len(many)
        assert_no_table_scan_for_totals(many)
        deep = manager.get(f"{self.URL}?page_size=2&page=5").json()
        assert (deep["count"], deep["count_exact"]) == (12, True)
        assert deep["next"] is not None and len(deep["results"]) == 2
        last = manager.get(f"{self.URL}?page_size=2&page=6").json()
        assert last["next"] is None and len(last["results"]) == 2
        assert manager.get(f"{self.URL}?page_size=2&page=7").status_code == 404

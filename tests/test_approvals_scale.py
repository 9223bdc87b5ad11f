"""The approvals list at scale: who sees which requests is decided by the database, so the inbox,
the history and ``GET /api/approvals/`` cost the same queries for 5 open requests as for 60."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tests.approval_helpers import PASSWORD, group_member, make_user, park_many, start_parked
from zart_django import DurableScheduler
from zart_django.approvals import can_decide, decidable_by, decide
from zart_django.approvals.models import ApprovalRequest
from zart_django.approvals.views import PAGE_SIZE

pytestmark = pytest.mark.django_db

DECIDE = "zart_approvals.decide_approval"


def superuser() -> User:
    return User.objects.create_superuser("root", password=PASSWORD)


USERS = {
    "direct": lambda: make_user("direct", DECIDE),
    "group": lambda: group_member("grouped", DECIDE),
    "superuser": superuser,
}


def queries(fetch) -> tuple[int, object]:
    """How many queries ``fetch()`` made, and what it returned."""
    with CaptureQueriesContext(connection) as captured:
        result = fetch()
    return len(captured), result


def session_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def api_client(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def inbox_rows(client: Client, url: str = "/approvals/") -> tuple[int, str]:
    def fetch() -> str:
        response = client.get(url)
        assert response.status_code == 200
        return response.content.decode()

    return queries(fetch)


def api_rows(client: APIClient, url: str = "/api/approvals/") -> tuple[int, dict]:
    def fetch() -> dict:
        response = client.get(url)
        assert response.status_code == 200
        return response.json()

    return queries(fetch)


@pytest.mark.parametrize("who", USERS)
def test_the_inbox_costs_the_same_queries_for_5_and_60_open_requests(who):
    user = USERS[who]()
    client = session_client(user)
    park_many("few", 5)
    few, page = inbox_rows(client)
    assert page.count('href="/approvals/requests/few-') == 5
    park_many("many", 55)
    many, page = inbox_rows(client)
    assert page.count('href="/approvals/requests/') == PAGE_SIZE
    assert "Page 1 of 2" in page and 'href="?page=2"' in page
    assert many == few, f"{few} queries for 5 requests, {many} for 60"
    _, last = inbox_rows(client, "/approvals/?page=2")
    assert last.count('href="/approvals/requests/') == 60 - PAGE_SIZE


@pytest.mark.parametrize("who", USERS)
def test_the_api_list_costs_the_same_queries_for_5_and_60_open_requests(who):
    client = api_client(USERS[who]())
    park_many("few", 5)
    few, body = api_rows(client)
    assert body["count"] == 5 and body["next"] is None
    park_many("many", 55)
    many, body = api_rows(client, "/api/approvals/?page_size=50")
    assert body["count"] == 60 and len(body["results"]) == 50 and body["next"]
    assert many == few, f"{few} queries for 5 requests, {many} for 60"
    rest = client.get(body["next"]).json()
    seen = {r["execution_id"] for r in body["results"] + rest["results"]}
    assert len(seen) == 60


def test_the_history_costs_the_same_queries_for_5_and_60_closed_requests():
    manager = make_user("alice", DECIDE)
    client = session_client(group_member("reader", DECIDE))
    decide_all = lambda ids: [decide(i, manager, approved=n % 2 == 0) for n, i in enumerate(ids)]  # noqa: E731
    decide_all(park_many("few", 5))
    few, page = inbox_rows(client, "/approvals/history/")
    assert page.count('href="/approvals/requests/few-') == 5
    decide_all(park_many("many", 55))
    many, page = inbox_rows(client, "/approvals/history/")
    assert page.count('href="/approvals/requests/') == PAGE_SIZE
    assert "approved" in page and "rejected" in page
    assert many == few, f"{few} queries for 5 requests, {many} for 60"


def test_users_without_the_permission_see_no_request_and_no_history(manager):
    park_many("hidden", 3)
    decide("hidden-0", manager, approved=True)
    inactive = make_user("gone", DECIDE)
    inactive.is_active = False
    inactive.save()
    for user in (make_user("clerk"), group_member("wrong", "zart_django.add_event")):
        assert not decidable_by(user).exists()
        assert "hidden-" not in session_client(user).get("/approvals/").content.decode()
        assert "hidden-" not in session_client(user).get("/approvals/history/").content.decode()
        assert api_client(user).get("/api/approvals/").json()["count"] == 0
    assert not decidable_by(inactive).exists()


def test_the_database_agrees_with_has_perm_request_by_request():
    """Requests naming various permissions; each user's list is exactly those ``can_decide``
    allows (``has_perm`` through ``ModelBackend``)."""
    permissions = [DECIDE, "zart_django.change_execution", "zart_django.add_event", "no-dot"]
    for n, permission in enumerate(permissions):
        start_parked(f"p-{n}")
        ApprovalRequest.objects.filter(execution_id=f"p-{n}").update(permission=permission)
    start_parked("done")
    DurableScheduler().cancel("done")
    users = [
        make_user("direct", DECIDE),
        make_user("both", DECIDE, "zart_django.change_execution"),
        group_member("grouped", "zart_django.change_execution"),
        make_user("clerk"),
        superuser(),
    ]
    mixed = group_member("mixed", "zart_django.add_event")
    mixed.user_permissions.add(Permission.objects.get(codename="decide_approval"))
    users.append(User.objects.get(pk=mixed.pk))
    for user in users:
        expected = [r.execution_id for r in ApprovalRequest.objects.open() if can_decide(user, r)]
        got = [r.execution_id for r in decidable_by(user)]
        assert sorted(got) == sorted(expected), user.username
    assert sorted(r.execution_id for r in decidable_by(users[-2])) == [f"p-{n}" for n in range(4)]


def test_a_page_number_out_of_range_or_garbage_shows_a_page(manager):
    park_many("g", 2)
    client = session_client(manager)
    for page in ("999", "abc", "-1", "%00"):
        response = client.get(f"/approvals/?page={page}")
        assert response.status_code == 200
        assert response.content.decode().count('href="/approvals/requests/g-') == 2


def test_the_history_shows_a_viewer_every_closed_request_and_others_only_theirs(manager):
    DurableScheduler().cancel(park_many("general", 2)[0])
    start_parked("special")
    ApprovalRequest.objects.filter(execution_id="special").update(
        permission="zart_django.change_execution"
    )
    DurableScheduler().cancel("special")
    viewer = session_client(make_user("viewer", "zart_django.view_execution"))
    assert inbox_rows(viewer, "/approvals/history/")[1].count('href="/approvals/requests/') == 2
    mine = inbox_rows(session_client(manager), "/approvals/history/")[1]
    assert "general-0" in mine and "special" not in mine and "general-1" not in mine

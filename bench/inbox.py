"""The manager's pages at 10k and 100k open approval requests: queries and time per page.

Open requests are bulk-loaded with their executions and assignee rows (a fifth each to the
manager by name, to the manager's group, to a permission the group holds, to nobody — the
request's permission decides — and to another user), beside finished executions whose requests
were decided, for the history. The manager holds the decision permission through a group only;
the admin's changelist is read by a superuser. Each page is fetched through Django's test client
(middleware, session, template or serializer included) on the demo project's URLs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from django.contrib.auth.models import Group, Permission, User
from django.db import connection, transaction
from django.db.models import Model
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from bench import rows
from bench.timing import median, percentile
from zart_django.approvals.models import (
    ApprovalAssignee,
    ApprovalRecord,
    ApprovalRequest,
    Reassignment,
    RequestStatus,
)
from zart_django.models import Execution, Status

MANAGER = "manager"
GROUP = "managers"
DECIDE = "zart_approvals.decide_approval"
PAGE_SIZE = 50
BATCH = 2_000
# One spec per fifth of the open requests; "" is a request with no assignees.
ASSIGNEES = (f"user:{MANAGER}", f"group:{GROUP}", f"perm:{DECIDE}", "", "user:someone-else")
VISIBLE_SHARE = 4 / 5  # the manager decides all but the last fifth
FINISHED_SHARE = 5  # one finished, decided execution per this many open requests


@dataclass(frozen=True)
class PageCost:
    """One page at one size: its queries (the same on every fetch) and seconds per fetch."""

    page: str
    url: str
    open_requests: int
    queries: int
    p50: float
    p95: float


def page_costs(small: int, large: int, repeats: int) -> list[tuple[PageCost, PageCost]]:
    """Every page's cost at ``small`` open requests, then at ``large``; empties the tables."""
    clear()
    clients = _clients()
    deep = int(small * VISIBLE_SHARE) // PAGE_SIZE  # the small inbox's last full page
    pages = _pages(deep)
    load(0, small)
    at_small = [_measure(name, url, fetch, clients, small, repeats) for name, url, fetch in pages]
    load(small, large)
    at_large = [_measure(name, url, fetch, clients, large, repeats) for name, url, fetch in pages]
    clear()
    return list(zip(at_small, at_large, strict=True))


Fetch = Callable[[dict[str, Client], str], int]


def _page(who: str) -> Fetch:
    def fetch(clients: dict[str, Client], url: str) -> int:
        return clients[who].get(url).status_code

    return fetch


def _pages(deep: int) -> list[tuple[str, str, Fetch]]:
    return [
        ("inbox page 1", "/approvals/", _page("manager")),
        (f"inbox page {deep}", f"/approvals/?page={deep}", _page("manager")),
        ("API list page 1", "/api/approvals/", _page("api")),
        (f"API list page {deep}", f"/api/approvals/?page={deep}", _page("api")),
        ("history page 1", "/approvals/history/", _page("manager")),
        ("admin executions", "/admin/zart_django/execution/", _page("admin")),
    ]


def _measure(
    name: str, url: str, fetch: Fetch, clients: dict[str, Client], size: int, repeats: int
) -> PageCost:
    with override_settings(ROOT_URLCONF="demo_project.urls"):
        with CaptureQueriesContext(connection) as captured:
            code = fetch(clients, url)  # also the warm-up
        queries = len(captured)  # now: the next request clears the connection's query log
        if code != 200:
            raise RuntimeError(f"GET {url} answered {code}, expected 200")
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            fetch(clients, url)
            seconds.append(time.perf_counter() - start)
    return PageCost(name, url, size, queries, median(seconds), percentile(seconds, 95))


def _clients() -> dict[str, Client]:
    """The manager (deciding through a group), logged in to the pages and to the API, and a
    superuser logged in to the admin."""
    group = Group.objects.create(name=GROUP)
    app_label, codename = DECIDE.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    manager = User.objects.create_user(MANAGER)
    manager.groups.add(group)
    admin = User.objects.create_superuser("bench-admin")
    pages, api, site = Client(), APIClient(), Client()
    pages.force_login(manager)
    api.force_authenticate(manager)
    site.force_login(admin)
    return {"manager": pages, "api": api, "admin": site}


def load(first: int, stop: int) -> None:
    """Open requests ``first`` .. ``stop - 1`` with their executions and assignee rows, and one
    finished, decided execution per ``FINISHED_SHARE`` of them."""
    now = timezone.now()
    done = range(first // FINISHED_SHARE, stop // FINISHED_SHARE)
    with transaction.atomic():
        _insert(Execution, (_execution(i, now) for i in range(first, stop)))
        _insert(Execution, (_execution(i, now, finished=True) for i in done))
        before = _last_request()
        _insert(ApprovalRequest, (_request(i, now) for i in range(first, stop)))
        opened = _last_request()
        _insert(ApprovalRequest, (_request(i, now, finished=True) for i in done))
        new = ApprovalRequest.objects.filter(pk__gt=before).order_by("pk")
        ids = dict(new.filter(pk__lte=opened).values_list("execution_id", "pk"))
        specs = ((ids[f"open-{i}"], ASSIGNEES[i % len(ASSIGNEES)]) for i in range(first, stop))
        _insert(ApprovalAssignee, (ApprovalAssignee(request_id=r, spec=s) for r, s in specs if s))
        _insert(ApprovalRecord, (_record(r) for r in new.filter(pk__gt=opened).iterator()))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _last_request() -> int:
    return ApprovalRequest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def clear() -> None:
    """Empty the approvals' tables, the engine's, the users and the groups."""
    with connection.cursor() as cursor:
        for model in (ApprovalAssignee, Reassignment, ApprovalRecord, ApprovalRequest):
            table = model._meta.db_table
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {table} CASCADE")
            else:
                cursor.execute(f"DELETE FROM {table}")
    rows.clear()
    User.objects.all().delete()
    Group.objects.all().delete()


def _insert(model: type[Model], objects: Iterator[Model]) -> None:
    while batch := list(islice(objects, BATCH)):
        model.objects.bulk_create(batch)


def _execution(i: int, now: datetime, finished: bool = False) -> Execution:
    created = now - timedelta(seconds=i)
    return Execution(
        id=f"{'done' if finished else 'open'}-{i}",
        task_name=f"bench-task-{i % 3}",
        status=Status.COMPLETED if finished else Status.WAITING,
        input={"requester": f"user-{i % 50}", "amount": i},
        waiting_on="" if finished else "approval",
        scheduled_at=None if finished or i % 2 else now + timedelta(days=1 + i % 30),
        created_at=created,
        updated_at=created,
        finished_at=now if finished else None,
        started_by=f"user-{i % 50}",
    )


def _request(i: int, now: datetime, finished: bool = False) -> ApprovalRequest:
    spec = ASSIGNEES[i % len(ASSIGNEES)]
    return ApprovalRequest(
        execution_id=f"{'done' if finished else 'open'}-{i}",
        event="approval",
        title=f"Purchase {i} for user-{i % 50}",
        summary="A bench request.",
        permission=DECIDE,
        assignees=[spec] if spec and not finished else [],
        status=RequestStatus.DECIDED if finished else RequestStatus.PENDING,
        created_at=now - timedelta(seconds=i),
        closed_at=now if finished else None,
        deadline=None if finished or i % 2 else now + timedelta(days=1 + i % 30),
    )


def _record(request: ApprovalRequest) -> ApprovalRecord:
    return ApprovalRecord(
        execution_id=request.execution_id,
        request_id=request.pk,
        run=request.run,
        task_name="bench-task",
        event=request.event,
        approved=request.pk % 3 != 0,
        reviewer=MANAGER,
        comment="ok",
        source="inbox",
        decided_at=request.closed_at,
    )

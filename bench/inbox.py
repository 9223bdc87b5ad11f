"""The manager's pages at 10k and 100k open approval requests: queries and time per page; and
the list pages beside big tables (``big_table_figures``).

Open requests are bulk-loaded with their executions and assignee rows (a fifth each to the
manager by name, to the manager's group, to a permission the group holds, to nobody — the
request's permission decides — and to another user), beside finished executions whose requests
were decided, for the history. The manager holds the decision permission through a group only;
the admin's changelist is read by a superuser. Each page is fetched through Django's test client
(middleware, session, template or serializer included) on the demo project's URLs.

``big_table_figures`` loads finished executions and parked ones waiting for an approval inside the
database (``generate_series`` on PostgreSQL, a recursive CTE on SQLite), a million and a hundred
thousand in the full run, and times the admin's execution list, the inbox and
``/api/executions/`` against the same pages at a hundredth of that.
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
from bench.results import Figure
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
    superuser logged in to the admin and to the API."""
    group = Group.objects.create(name=GROUP)
    app_label, codename = DECIDE.split(".")
    group.permissions.add(
        Permission.objects.get(content_type__app_label=app_label, codename=codename)
    )
    manager = User.objects.create_user(MANAGER)
    manager.groups.add(group)
    admin = User.objects.create_superuser("bench-admin")
    pages, api, site, api_admin = Client(), APIClient(), Client(), APIClient()
    pages.force_login(manager)
    api.force_authenticate(manager)
    site.force_login(admin)
    api_admin.force_authenticate(admin)
    return {"manager": pages, "api": api, "admin": site, "api-admin": api_admin}


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


BIG_FULL = (10_000, 1_000_000)
"""Finished executions at the small and the large size of the full run (a tenth as many parked)."""
BIG_QUICK = (10_000, 100_000)
BIG_REPEATS = {False: 25, True: 9}
PARKED_SHARE = 10  # one parked execution, waiting for an approval, per this many finished
BIG_PAGES = (
    ("admin execution list", "/admin/zart_django/execution/", "admin"),
    ("inbox", "/approvals/", "manager"),
    ("/api/executions/", "/api/executions/", "api-admin"),
)

_EXECUTION_COLUMNS = (
    "id, task_name, status, input, output, error, waiting_on, scheduled_at, deadline, lease_token,"
    " lease_owner, recoveries, run, created_at, updated_at, finished_at, started_by"
)
_REQUEST_COLUMNS = (
    "execution_id, run, event, title, summary, permission, assignees, required, allow_requester,"
    " form, status, created_at, closed_at, deadline, escalated_to"
)
# {name}: done (finished) or parked; {status}, {waiting_on}, {finished}: theirs. Created one
# second apart, the newest first; a parked one waits with no deadline.
_EXECUTIONS = {
    "postgresql": f"""
INSERT INTO {{table}} ({_EXECUTION_COLUMNS})
SELECT '{{name}}-' || i, 'bench-task-' || (i %% 3), '{{status}}',
       '{{{{"amount": 1}}}}'::jsonb, NULL, '', '{{waiting_on}}', NULL, NULL, '', '', 0, 1,
       now() - i * interval '1 second', now(), {{finished}}, ''
FROM generate_series(%s, %s - 1) AS i""",
    "sqlite": f"""
WITH RECURSIVE n(i) AS (SELECT %s UNION ALL SELECT i + 1 FROM n WHERE i + 1 < %s)
INSERT INTO {{table}} ({_EXECUTION_COLUMNS})
SELECT '{{name}}-' || i, 'bench-task-' || (i %% 3), '{{status}}', '{{{{"amount": 1}}}}', NULL, '',
       '{{waiting_on}}', NULL, NULL, '', '', 0, 1,
       strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || i || ' seconds'),
       datetime('now'), {{finished}}, ''
FROM n""",
}
_NOW = {"postgresql": "now()", "sqlite": "datetime('now')"}
_REQUESTS = {
    "postgresql": f"""
INSERT INTO {{table}} ({_REQUEST_COLUMNS})
SELECT '{{name}}-' || i, 1, 'approval', 'Purchase ' || i, '', %s, '[]'::jsonb, 1, false, '',
       'pending', now() - i * interval '1 second', NULL,
       CASE WHEN i %% 2 = 0 THEN NULL ELSE now() + (1 + i %% 30) * interval '1 day' END,
       '[]'::jsonb
FROM generate_series(%s, %s - 1) AS i""",
    "sqlite": f"""
WITH RECURSIVE n(i) AS (SELECT %s UNION ALL SELECT i + 1 FROM n WHERE i + 1 < %s)
INSERT INTO {{table}} ({_REQUEST_COLUMNS})
SELECT '{{name}}-' || i, 1, 'approval', 'Purchase ' || i, '', %s, '[]', 1, false, '', 'pending',
       strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || i || ' seconds'), NULL,
       CASE WHEN i %% 2 = 0 THEN NULL
            ELSE strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '+' || (1 + i %% 30) || ' days') END,
       '[]'
FROM n""",
}


def big_table_figures(db: str, quick: bool, item: str) -> list[Figure]:
    """Item ``item``: a page of the admin's execution list, of the inbox and of
    ``/api/executions/`` with a million finished executions and a hundred thousand parked ones
    (``quick``: a tenth of that), each against the same page at a hundredth of the rows; one
    ``Figure`` per page (target: ratio <= 1.5, the same queries). Empties the tables."""
    small, large = BIG_QUICK if quick else BIG_FULL
    repeats = BIG_REPEATS[quick]
    clear()
    clients = _clients()
    load_big(0, small)
    at_small = [
        _measure(name, url, _page(who), clients, small, repeats) for name, url, who in BIG_PAGES
    ]
    load_big(small, large)
    at_large = [
        _measure(name, url, _page(who), clients, large, repeats) for name, url, who in BIG_PAGES
    ]
    clear()
    return [_big_figure(item, db, s, g, repeats) for s, g in zip(at_small, at_large, strict=True)]


def _big_figure(item: str, db: str, small: PageCost, large: PageCost, repeats: int) -> Figure:
    """The large page's median beside the small one's (their queries in the label and details)."""
    rows = f"{large.open_requests:,} finished + {large.open_requests // PARKED_SHARE:,} parked"
    fewer = f"{small.open_requests:,} + {small.open_requests // PARKED_SHARE:,}"
    ratio = large.p50 / small.p50
    return Figure(
        item=item,
        db=db,
        label=f"{large.page} p50, {rows} (vs {fewer}), {large.queries} queries",
        value=large.p50 * 1000,
        unit="ms",
        reference=small.p50 * 1000,
        reference_unit="ms",
        target="ratio <= 1.5",
        met=ratio <= 1.5,
        details={
            "url": large.url,
            "queries": {"small": small.queries, "large": large.queries},
            "p95_ms": {"small": small.p95 * 1000, "large": large.p95 * 1000},
            "repeats": repeats,
        },
    )


def load_big(first: int, stop: int) -> None:
    """Finished executions ``done-<first>`` .. ``done-<stop - 1>`` and a tenth as many parked
    ones waiting for an approval (a pending request each, decided by the permission's holders,
    half of them with a deadline 1 to 30 days ahead),
    generated inside the database; then, on PostgreSQL, ANALYZE."""
    vendor = connection.vendor
    executions = _EXECUTIONS[vendor].replace("{table}", Execution._meta.db_table)
    requests = _REQUESTS[vendor].replace("{table}", ApprovalRequest._meta.db_table)
    parked = [first // PARKED_SHARE, stop // PARKED_SHARE]
    finished = {
        "name": "done",
        "status": Status.COMPLETED.value,
        "waiting_on": "",
        "finished": _NOW[vendor],
    }
    waiting = {
        "name": "parked",
        "status": Status.WAITING.value,
        "waiting_on": "approval",
        "finished": "NULL",
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(executions.format(**finished), [first, stop])
        cursor.execute(executions.format(**waiting), parked)
        on_pg = vendor == "postgresql"
        cursor.execute(
            requests.format(name="parked"), [DECIDE, *parked] if on_pg else [*parked, DECIDE]
        )
    if vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")

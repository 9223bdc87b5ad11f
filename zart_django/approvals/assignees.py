"""Who may decide a request: its assignees, as normalized specs, and the users they name.

A spec is ``"user:<username>"``, ``"group:<name>"`` or ``"perm:<app_label.codename>"``;
``"!user:<username>"`` marks a user who reassigned the request away. A request without assignees
is assigned to ``"perm:<its permission>"``: everyone holding it, as before assignees existed.
The specs are resolved once, when the request is made, and kept on it (``ApprovalRequest.
assignees``, with one ``ApprovalAssignee`` row per spec so an inbox is one query).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db.models import CharField, Exists, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Concat

from .models import ApprovalAssignee, ApprovalRequest

KINDS = ("user", "group", "perm")
EXCLUDED = "!user:"

Assignees = Iterable[Any] | Callable[[Any], Iterable[Any]]
"""What ``wait_for_approval(assignees=...)`` takes: users, groups, permissions (objects or
strings), or a callable computing them from the execution's input."""


def normalize(assignee: Any) -> str:
    """The spec of one assignee: a user, ``Group`` or ``Permission`` object, a spec, or a bare
    username. ``ValueError`` for anything else."""
    if isinstance(assignee, Group):
        return f"group:{assignee.name}"
    if isinstance(assignee, Permission):
        return f"perm:{assignee.content_type.app_label}.{assignee.codename}"
    if hasattr(assignee, "get_username"):
        return f"user:{assignee.get_username()}"
    if not isinstance(assignee, str):
        raise ValueError(f"an assignee is a user, group, permission or string, not {assignee!r}")
    kind, colon, name = assignee.partition(":")
    if not colon:
        kind, name = "user", assignee
    if kind not in KINDS or not name.strip():
        raise ValueError(
            f"assignee {assignee!r} is not a username, 'user:<username>', 'group:<name>'"
            " or 'perm:<app_label.codename>'"
        )
    if kind == "perm" and "." not in name:
        raise ValueError(f"assignee {assignee!r}: a permission is 'perm:<app_label.codename>'")
    return f"{kind}:{name}"


def resolve(assignees: Assignees, input: Any) -> list[str]:
    """The specs of ``assignees`` (called with ``input`` if it is callable), deduplicated in
    order. ``ValueError`` if they name nobody: an empty list never means "everyone"."""
    if callable(assignees):
        assignees = assignees(input)
    if isinstance(assignees, str) or not isinstance(assignees, Iterable):
        assignees = [assignees]
    specs = list(dict.fromkeys(normalize(assignee) for assignee in assignees))
    if not specs:
        raise ValueError("wait_for_approval(assignees=...) named nobody")
    return specs


def effective(request: ApprovalRequest) -> list[str]:
    """The request's specs; ``["perm:<its permission>"]`` when it has no assignees."""
    return list(request.assignees) or [f"perm:{request.permission}"]


def assign(request: ApprovalRequest, specs: list[str]) -> None:
    """Store ``specs`` as the request's assignees: the field and its rows (saved request)."""
    ApprovalRequest.objects.filter(pk=request.pk).update(assignees=specs)
    request.assignees = specs
    ApprovalAssignee.objects.filter(request=request).delete()
    ApprovalAssignee.objects.bulk_create(
        [ApprovalAssignee(request=request, spec=spec) for spec in specs]
    )


def is_assignee(user: Any, request: ApprovalRequest) -> bool:
    """Whether ``user`` (active) is one of the request's assignees. A permission is asked of the
    authentication backends with ``has_perm``, globally and for the request (object
    permissions, as django-guardian or django-rules grant them)."""
    if not (user.is_authenticated and user.is_active):
        return False
    specs = effective(request)
    if EXCLUDED + user.get_username() in specs:
        return False
    return any(_holds(user, spec, request) for spec in specs)


def _holds(user: Any, spec: str, request: ApprovalRequest) -> bool:
    kind, _, name = spec.partition(":")
    if kind == "user":
        return bool(name == user.get_username())
    if kind == "group":
        return hasattr(user, "groups") and user.groups.filter(name=name).exists()
    if kind == "perm":
        return bool(user.has_perm(name) or user.has_perm(name, request))
    return False


def recipients(request: ApprovalRequest) -> list[Any]:
    """The active users who may decide ``request``, as Django's ``ModelBackend`` sees them
    (users, groups, direct and group permissions, superusers for permissions), without its
    requester unless the request allows them and without users who reassigned it away.
    Permissions granted only by another backend are not found here."""
    user_model = get_user_model()
    username_field = user_model.USERNAME_FIELD
    specs = effective(request)
    wanted = Q(pk__in=[])
    for spec in specs:
        kind, _, name = spec.partition(":")
        if kind == "user":
            wanted |= Q(**{username_field: name})
        elif kind == "group":
            wanted |= Q(groups__name=name)
        elif kind == "perm":
            wanted |= _holding(name)
    excluded = [spec.removeprefix(EXCLUDED) for spec in specs if spec.startswith(EXCLUDED)]
    if request.execution.started_by and not request.allow_requester:
        excluded.append(request.execution.started_by)
    users = user_model.objects.filter(wanted, is_active=True).exclude(
        **{f"{username_field}__in": excluded}
    )
    return list(users.distinct().order_by(username_field))


def _holding(permission: str) -> Q:
    app_label, _, codename = permission.partition(".")
    return (
        Q(is_superuser=True)
        | Q(
            user_permissions__content_type__app_label=app_label, user_permissions__codename=codename
        )
        | Q(
            groups__permissions__content_type__app_label=app_label,
            groups__permissions__codename=codename,
        )
    )


def assigned_to(user: Any) -> Q:
    """The condition on requests that ``user`` (active) is an assignee of, for one query: a row
    naming the user, one of their groups or one of their permissions (a superuser holds every
    permission), or no rows and the request's permission held; and no row excluding them."""
    rows = ApprovalAssignee.objects.filter(request=OuterRef("pk"))
    username = user.get_username()
    superuser = getattr(user, "is_superuser", False)
    mine = Q(spec=f"user:{username}")
    held_permission = Q()
    if superuser:
        mine |= Q(spec__startswith="perm:")
    elif hasattr(user, "user_permissions"):
        held = _permissions(user)
        perm_specs = held.annotate(spec=Concat(Value("perm:"), "dotted", output_field=TEXT))
        mine |= Q(spec__in=_beside_requests(perm_specs.values_list("spec", flat=True)))
        held_permission = Q(permission__in=_beside_requests(held.values_list("dotted", flat=True)))
    else:
        held_permission = Q(pk__in=[])
    if hasattr(user, "groups"):
        groups = user.groups.annotate(spec=Concat(Value("group:"), "name", output_field=TEXT))
        mine |= Q(spec__in=_beside_requests(groups.values_list("spec", flat=True)))
    unassigned = ~RowExists(rows) & held_permission
    excluded = Exists(rows.filter(spec=EXCLUDED + username))
    return (unassigned | RowExists(rows.filter(mine))) & ~excluded


class RowExists(Exists):
    """``Exists`` that PostgreSQL tests row by row, with the index on its correlated column.

    Under an ``OR``, PostgreSQL may hash the whole subquery instead: it reads every matching row
    of the subquery's table once per statement, planned for every row of the outer table, not
    for the page that a ``LIMIT`` asks for. A list page then costs as much as the table is large
    (the assignees' table: 16 of the inbox's 28 ms a query with 100,000 open requests).
    ``OFFSET 0`` in the subquery keeps the planner from hashing it (it does not simplify an
    ``EXISTS`` with an ``OFFSET``); the result is the same."""

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, Any]:
        return self.as_sql(compiler, connection, template="EXISTS(%(subquery)s OFFSET 0)", **extra)


TEXT = CharField()


def _beside_requests(values: QuerySet[Any]) -> Any:
    """``values`` as a subquery when the auth tables share the requests' database, else read
    now: Django cannot join across databases (``ZART["DATABASE"]`` apart from ``default``)."""
    return values if values.db == ApprovalAssignee.objects.db else list(values)


def _permissions(user: Any) -> QuerySet[Any]:
    """The user's permissions, direct and through groups, annotated "app_label.codename" as
    ``dotted`` (for subqueries)."""
    held = Permission.objects.filter(Q(user=user) | Q(group__user=user))
    dotted = Concat("content_type__app_label", Value("."), "codename", output_field=TEXT)
    return held.annotate(dotted=dotted)


def named(user: Any) -> Exists:
    """The condition on requests that name ``user`` among their assignees by username (not
    through a group or a permission), for the inbox's "assigned to me"."""
    rows = ApprovalAssignee.objects.filter(request=OuterRef("pk"))
    return Exists(rows.filter(spec=f"user:{user.get_username()}"))

"""Ready-made groups for the permissions zart-django checks (``manage.py zart_setup_groups``):
"zart operators" look after executions; apps built on the engine add their own permissions and
groups with ``grant`` (``zart_django.approvals`` adds "zart approvers", who decide approvals).
Setting them up only adds what is missing, so it can run on every deploy."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission
from django.db import transaction

from .errors import ZartError

GROUPS: dict[str, tuple[str, ...]] = {
    "zart operators": (
        "zart_django.view_execution",
        "zart_django.change_execution",
        "zart_django.add_event",
        "zart_django.view_event",
    ),
}
"""Each group's permissions, as ``app_label.codename`` (the README's "Permissions" says what
each one allows)."""


def grant(group: str, permissions: tuple[str, ...]) -> None:
    """Add ``permissions`` to the ready-made ``group`` (a new group if there is none by that
    name); for an app's ``AppConfig.ready()``."""
    held = GROUPS.get(group, ())
    GROUPS[group] = (*held, *(p for p in permissions if p not in held))


class PermissionMissing(ZartError):
    """A permission the groups need is not in the database: ``migrate`` has not run."""


def setup_groups(dry_run: bool = False) -> list[str]:
    """Create each group of ``GROUPS`` that is missing and add the permissions it lacks, leaving
    any other permission a group holds; return one line per change (or per group left as it
    was). With ``dry_run`` nothing is stored and the lines say what would be done."""
    lines: list[str] = []
    with transaction.atomic():
        for name, wanted in GROUPS.items():
            permissions = _permissions(wanted)
            group = Group.objects.filter(name=name).first()
            held = set() if group is None else set(group.permissions.values_list("pk", flat=True))
            missing = [p for p in permissions if p.pk not in held]
            if group is None:
                lines.append(f"{'would create' if dry_run else 'created'} group {name!r}")
                if not dry_run:
                    group = Group.objects.create(name=name)
            for permission in missing:
                lines.append(
                    f"{name!r}: {'would add' if dry_run else 'added'} {_dotted(permission)}"
                )
            if missing and not dry_run:
                group.permissions.add(*missing)
            if not missing:
                lines.append(f"{name!r}: unchanged ({len(permissions)} permissions held)")
    return lines


def _permissions(dotted: tuple[str, ...]) -> list[Permission]:
    """The ``Permission`` rows for ``app_label.codename`` names, in their order."""
    found = []
    for name in dotted:
        app_label, codename = name.split(".")
        permission = Permission.objects.filter(
            content_type__app_label=app_label, codename=codename
        ).first()
        if permission is None:
            raise PermissionMissing(
                f"permission {name} does not exist: run manage.py migrate first"
            )
        found.append(permission)
    return found


def _dotted(permission: Permission) -> str:
    return f"{permission.content_type.app_label}.{permission.codename}"

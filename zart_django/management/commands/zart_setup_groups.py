"""``manage.py zart_setup_groups``: create the ready-made groups of ``zart_django.groups``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zart_django.groups import PermissionMissing, setup_groups


class Command(BaseCommand):
    help = (
        'Create the groups "zart operators" (read, cancel, retry, rerun and restart executions;'
        ' offer events) and those of installed apps ("zart approvers", who decide approvals,'
        " with zart_django.approvals), or add the permissions they lack."
        " Safe to run again: nothing is removed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would be done, store nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            lines = setup_groups(dry_run=options["dry_run"])
        except PermissionMissing as exc:
            raise CommandError(str(exc)) from exc
        for line in lines:
            self.stdout.write(line)

"""``manage.py zart``: list, inspect, start, offer to, cancel, retry, rerun, restart and purge
executions from a shell; list, pause and resume schedules (``zart schedules [pause|resume NAME]``).

Every subcommand prints a table for people, or with ``--json`` one JSON document for scripts, and
goes through ``DurableScheduler`` for anything it changes. Exit codes: ``0`` done; ``1`` refused
(the execution is finished, the event was delivered or expired or is reserved, the id is
taken with another task or input, a retry/rerun/restart its status does not allow); ``2`` usage (bad arguments, malformed JSON, an id or name
outside the name alphabet, a value that does not fit the task's type); ``3`` not found (no such
execution, task, recorded step or schedule). Errors go to stderr.

A subcommand is a function registered with ``@subcommand``; adding one is a few lines.
"""

from __future__ import annotations

import json
from argparse import ArgumentParser
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from zart_django import (
    DurableScheduler,
    ExecutionInfo,
    PayloadError,
    ZartError,
    conf,
    schedules,
    store,
)
from zart_django.clock import now
from zart_django.management.cli import age, at_least_one, cell, show_sections, table, when
from zart_django.models import FINISHED_STATUSES, UNCLAIMED_SHOWN_AFTER, Status

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3


@dataclass(frozen=True)
class Output:
    """What a subcommand answers: ``data`` for ``--json``, ``text`` for people."""

    data: Any
    text: str


@dataclass(frozen=True)
class Subcommand:
    help: str
    arguments: Callable[[ArgumentParser], None]
    run: Callable[[dict[str, Any]], Output]


SUBCOMMANDS: dict[str, Subcommand] = {}


def subcommand(
    name: str, help: str, arguments: Callable[[ArgumentParser], None] = lambda parser: None
) -> Callable[[Callable[[dict[str, Any]], Output]], Callable[[dict[str, Any]], Output]]:
    """Register the decorated function as ``manage.py zart <name>``; ``arguments`` adds its own
    arguments to its parser (``--json`` is added to every one)."""

    def register(run: Callable[[dict[str, Any]], Output]) -> Callable[[dict[str, Any]], Output]:
        SUBCOMMANDS[name] = Subcommand(help, arguments, run)
        return run

    return register


def exit_code(exc: ZartError) -> int:
    """The exit code for an error of the engine (see the module's docstring)."""
    if isinstance(exc, LookupError):
        return EXIT_NOT_FOUND
    if isinstance(exc, PayloadError):
        return EXIT_USAGE
    return EXIT_REFUSED


def parse_json(text: str | None, what: str) -> Any:
    """The JSON value of an argument (None if it was left out); a usage error if it is not JSON."""
    if text is None:
        return None

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except ValueError as exc:
        raise CommandError(f"{what} is not valid JSON: {exc}", returncode=EXIT_USAGE) from None


class Command(BaseCommand):
    help = (
        "Inspect and operate durable executions: list, show, stats, start, offer, cancel, purge."
        " Exit codes: 0 done, 1 refused, 2 usage, 3 not found."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        commands = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)
        for name, command in SUBCOMMANDS.items():
            sub = commands.add_parser(name, help=command.help, description=command.help)
            command.arguments(sub)
            sub.add_argument("--json", action="store_true", help="print JSON for scripts")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            output = SUBCOMMANDS[options["subcommand"]].run(options)
        except ZartError as exc:
            raise CommandError(str(exc), returncode=exit_code(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(output.data, indent=2, ensure_ascii=False, default=str))
        else:
            self.stdout.write(output.text)


def _id(parser: ArgumentParser) -> None:
    parser.add_argument("id", help="the execution's id")


def _summary(execution: Any, task: str) -> dict[str, Any]:
    """An execution (``ExecutionInfo`` or a stored row) as one line of ``list``."""
    return {
        "id": execution.id,
        "task": task,
        "status": execution.status,
        "waiting_on": execution.waiting_on,
        "created_at": execution.created_at,
        "finished_at": execution.finished_at,
    }


def _list_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("--status", choices=Status.values, help="only executions in this status")
    parser.add_argument("--task", help="only executions of this task")
    parser.add_argument("--limit", type=at_least_one, default=50, help="at most this many (50)")


@subcommand("list", "executions, newest first", _list_arguments)
def list_executions(options: dict[str, Any]) -> Output:
    moment = now()
    rows = []
    for e in store.list_executions(options["status"], options["task"], options["limit"]):
        waited = e.unclaimed_for(moment)
        unclaimed = waited if waited is not None and waited >= UNCLAIMED_SHOWN_AFTER else None
        rows.append(
            {
                **_summary(e, e.task_name),
                "unclaimed_for": unclaimed and age(unclaimed),  # no worker has its task's code?
            }
        )
    headers = ("ID", "TASK", "STATUS", "WAITING ON", "CREATED", "FINISHED", "UNCLAIMED FOR")
    text = table(headers, [list(row.values()) for row in rows]) if rows else "No executions."
    return Output(rows, text)


@subcommand("show", "one execution: its steps and events (and approvals, if installed)", _id)
def show(options: dict[str, Any]) -> Output:
    info = DurableScheduler().get(options["id"])
    events = [
        {"name": e.name, "payload": e.payload, "created_at": e.created_at}
        for e in store.load_events(info.id)
    ]
    sections = {key: section.rows(info.id) for key, section in show_sections.items()}
    data = {**asdict(info), "events": events, **sections}
    return Output(data, _show_text(info, events, sections))


def _show_text(info: ExecutionInfo, events: list[dict], sections: dict[str, list[dict]]) -> str:
    fields = [
        ("Execution", info.id),
        ("Task", info.task),
        ("Status", info.status),
        ("Waiting on", info.waiting_on),
        ("Created", when(info.created_at)),
        ("Finished", when(info.finished_at)),
        ("Input", cell(info.input)),
        ("Output", cell(info.output)),
        ("Error", cell(info.error)),
    ]
    if info.parent:
        fields.append(("Parent", info.parent))
    if info.children:
        fields.append(("Children", ", ".join(info.children)))
    parts = ["\n".join(f"{label + ':':<12}{cell(value)}" for label, value in fields)]
    steps = [
        (s.position, s.name, s.kind, s.status, s.attempts, s.error or s.result, s.finished_at)
        for s in info.steps
    ]
    headers = ("#", "STEP", "KIND", "STATUS", "ATTEMPTS", "RESULT OR ERROR", "FINISHED")
    parts.append("Steps:\n" + (table(headers, steps) if steps else "none yet"))
    if events:
        rows = [(e["name"], e["payload"], e["created_at"]) for e in events]
        parts.append("Events:\n" + table(("EVENT", "PAYLOAD", "OFFERED"), rows))
    for key, rows in sections.items():
        if rows:
            section = show_sections[key]
            parts.append(f"{section.title}:\n{section.text(rows)}")
    return "\n\n".join(parts)


def _start_arguments(parser: ArgumentParser) -> None:
    parser.add_argument("task", help="the registered task's name")
    parser.add_argument("id", help="the new execution's id")
    parser.add_argument("input", nargs="?", help="the input, as JSON (default: null)")


@subcommand(
    "start", "start a task as a new execution (the same again is harmless)", _start_arguments
)
def start(options: dict[str, Any]) -> Output:
    data = parse_json(options["input"], "the input")
    info = DurableScheduler().start(options["id"], options["task"], data)
    return Output(_summary(info, info.task), f"{info.id}: {info.task}, {info.status}")


def _offer_arguments(parser: ArgumentParser) -> None:
    _id(parser)
    parser.add_argument("event", help="the event's name")
    parser.add_argument("payload", nargs="?", help="the payload, as JSON (default: null)")


@subcommand(
    "offer", "offer an event to an execution (approvals are decided, not offered)", _offer_arguments
)
def offer(options: dict[str, Any]) -> Output:
    payload = parse_json(options["payload"], "the payload")
    DurableScheduler().offer_event(options["id"], options["event"], payload)
    data = {"id": options["id"], "event": options["event"], "offered": True}
    return Output(data, f"offered {options['event']!r} to {options['id']}")


@subcommand("cancel", "cancel an unfinished execution for good", _id)
def cancel(options: dict[str, Any]) -> Output:
    scheduler = DurableScheduler()
    scheduler.cancel(options["id"])
    info = scheduler.get(options["id"])
    return Output(_summary(info, info.task), f"{info.id}: {info.status}")


def _new_run(info: ExecutionInfo) -> Output:
    return Output(_summary(info, info.task), f"{info.id}: run {info.run}, {info.status}")


@subcommand("retry", "continue a failed or blocked execution from where it stopped", _id)
def retry(options: dict[str, Any]) -> Output:
    return _new_run(DurableScheduler().retry(options["id"]))


def _rerun_arguments(parser: ArgumentParser) -> None:
    _id(parser)
    parser.add_argument("--from", dest="from_step", required=True, help="the step to run again")


@subcommand("rerun", "run an execution again from a recorded step (new run)", _rerun_arguments)
def rerun(options: dict[str, Any]) -> Output:
    return _new_run(DurableScheduler().rerun(options["id"], options["from_step"]))


def _restart_arguments(parser: ArgumentParser) -> None:
    _id(parser)
    parser.add_argument("input", nargs="?", help="a new input, as JSON (default: the same)")


@subcommand("restart", "run an execution again from the top (new run)", _restart_arguments)
def restart(options: dict[str, Any]) -> Output:
    given = options["input"]
    data = parse_json(given, "the input") if given is not None else None
    return _new_run(DurableScheduler().restart(options["id"], data))


def _purge_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "--older-than",
        help='finished longer ago than this, e.g. "30d", "12h" (default: ZART["RETENTION"])',
    )
    parser.add_argument(
        "--status",
        action="append",
        choices=[str(status) for status in FINISHED_STATUSES],
        help="only this finished status (repeat for more; default: all four)",
    )
    parser.add_argument("--dry-run", action="store_true", help="count, delete nothing")
    parser.add_argument(
        "--batch-size", type=at_least_one, default=500, help="executions per transaction (500)"
    )


@subcommand(
    "purge",
    "delete finished executions with their steps, events and approval requests; decisions are kept",
    _purge_arguments,
)
def purge(options: dict[str, Any]) -> Output:
    older_than = options["older_than"] or conf.get("RETENTION")
    if older_than is None:
        raise CommandError(
            'give --older-than (e.g. "30d") or set ZART["RETENTION"]', returncode=EXIT_USAGE
        )
    counts = DurableScheduler().purge(
        older_than,
        statuses=options["status"] or FINISHED_STATUSES,
        dry_run=options["dry_run"],
        batch_size=options["batch_size"],
    )
    verb = "would delete" if options["dry_run"] else "deleted"
    listed = ", ".join(f"{name.replace('_', ' ')}: {n}" for name, n in counts.items() if n)
    text = f"{verb} {listed or 'nothing'} (approval decisions are kept)"
    return Output({"dry_run": options["dry_run"], "deleted": counts}, text)


@subcommand("stats", "counts by status and task, the oldest due and the oldest parked execution")
def stats(options: dict[str, Any]) -> Output:
    found = store.execution_stats()
    moment = now()
    by_status: dict[str, int] = {}
    by_task: dict[str, int] = {}
    for status, task, n in found.counts:
        by_status[status] = by_status.get(status, 0) + n
        by_task[task] = by_task.get(task, 0) + n
    oldest_due = found.oldest_due and {
        "id": found.oldest_due.id,
        "due_at": found.oldest_due.scheduled_at,
        "late_seconds": (moment - found.oldest_due.scheduled_at).total_seconds(),
    }
    oldest_parked = found.oldest_parked and {
        "id": found.oldest_parked.id,
        "parked_at": found.oldest_parked.updated_at,
        "waiting_on": found.oldest_parked.waiting_on,
        "parked_seconds": (moment - found.oldest_parked.updated_at).total_seconds(),
    }
    data = {
        "by_status": by_status,
        "by_task": by_task,
        "counts": [{"status": s, "task": t, "count": n} for s, t, n in found.counts],
        "oldest_due": oldest_due,
        "oldest_parked": oldest_parked,
    }
    lines = [table(("STATUS", "TASK", "COUNT"), found.counts) if found.counts else "No executions."]
    if found.oldest_due is not None:
        late = age(moment - found.oldest_due.scheduled_at)
        lines.append(f"Oldest due:    {found.oldest_due.id}, due {late} ago")
    if found.oldest_parked is not None:
        parked = age(moment - found.oldest_parked.updated_at)
        on = found.oldest_parked.waiting_on
        lines.append(f"Oldest parked: {found.oldest_parked.id}, waiting on {on} for {parked}")
    return Output(data, "\n".join(lines))


def _schedules_arguments(parser: ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=("list", "pause", "resume"), default="list", help="(list)"
    )
    parser.add_argument("name", nargs="?", help="the scheduled task's name (pause, resume)")


@subcommand(
    "schedules",
    "recurring tasks: list them, or pause or resume one (zart schedules pause NAME)",
    _schedules_arguments,
)
def schedules_command(options: dict[str, Any]) -> Output:
    action, name = options["action"], options["name"]
    if action == "list":
        rows = [asdict(info) for info in schedules.list_schedules()]
        headers = ("TASK", "SCHEDULE", "TIME ZONE", "OVERLAP", "NEXT RUN", "LAST", "PAUSED")
        cells = [
            (r["task"], r["expression"], r["timezone"], r["overlap"])
            + (when(r["next_run_at"]), r["last_occurrence"], _paused(r))
            for r in rows
        ]
        return Output(rows, table(headers, cells) if rows else "No schedules.")
    if not name:
        raise CommandError(
            f"give the task's name: zart schedules {action} NAME", returncode=EXIT_USAGE
        )
    info = schedules.pause(name) if action == "pause" else schedules.resume(name)
    text = (
        f"{info.task}: {'paused' if info.paused else 'resumed'}, next run {when(info.next_run_at)}"
    )
    return Output(asdict(info), text)


def _paused(row: dict[str, Any]) -> str:
    """ "yes", "no", or "inactive" for a schedule its task's code no longer has."""
    if not row["active"]:
        return "inactive"
    return "yes" if row["paused"] else "no"

"""``python -m bench.suite --db sqlite|postgres --out FILE``: every measurement on one database.

``bench.run`` starts one suite process per database, after creating the benchmark database, and
reads back the JSON it writes: the figures, the server version and the profile report. Django is
set up in ``main``, so the measurement modules are imported after it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bench.results import Figure
    from bench.scaling import IoRun

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    chain_steps: int  # (a) steps of the workflow a step is timed in
    chain_rounds: int  # (a) alternated rounds: reference rows, ORM rows, one workflow
    reference_rows: int  # (a) rows per reference round
    approvals: int  # (b) approvals per run
    approval_rounds: int  # (b) alternated runs: ours, DBOS
    latency_runs: int  # (c) runs, each on a fresh worker
    latency_samples: int  # (c) samples per run
    idle_workers: int  # (c) idle workers one due execution may wake
    wake_samples: int  # (c) due executions, one at a time
    io_steps: int  # (d) 50 ms steps per execution (64 executions per worker process)
    memory_early: int  # (f) executions before the first RSS reading
    memory_late: int  # (f) executions before the second
    parked_small: int  # (e) parked executions, few
    parked_large: int  # (e) parked executions, many
    claim_repeats: int  # (e) timed claims per size and case
    inbox_small: int  # (e) open requests, few
    inbox_large: int  # (e) open requests, many
    inbox_repeats: int  # (e) timed fetches per page
    resume_steps: tuple[int, ...]  # (g) recorded histories
    resume_repeats: int  # (g)
    fanout_members: int  # (h)
    io_members: int  # (h)
    io_sequence: int  # (h)
    profile_approvals: int  # the profile


FULL = Sizes(
    chain_steps=1000,
    chain_rounds=5,
    reference_rows=1000,
    approvals=300,
    approval_rounds=3,
    latency_runs=5,
    latency_samples=20,
    idle_workers=4,
    wake_samples=10,
    io_steps=20,
    memory_early=1000,
    memory_late=100_000,
    parked_small=10_000,
    parked_large=1_000_000,
    claim_repeats=100,
    inbox_small=10_000,
    inbox_large=100_000,
    inbox_repeats=9,
    resume_steps=(10, 100, 1000),
    resume_repeats=3,
    fanout_members=1000,
    io_members=1000,
    io_sequence=40,
    profile_approvals=200,
)
QUICK = replace(  # the same shapes, smaller or fewer
    FULL,
    chain_rounds=2,
    reference_rows=300,
    approvals=60,
    approval_rounds=2,
    latency_runs=3,
    latency_samples=8,
    wake_samples=3,
    io_steps=10,
    memory_late=2000,
    parked_large=100_000,
    claim_repeats=20,
    inbox_small=2_000,
    inbox_large=20_000,
    inbox_repeats=5,
    resume_repeats=1,
    io_members=200,
    io_sequence=10,
    profile_approvals=20,
)
IO_PAUSE = 0.05  # seconds an I/O-like fan-out member sleeps
IO_WIDTHS = (4, 32)  # max_concurrency of the I/O-like groups: the default, and a wide one
IO_PROCESSES = 4  # (d): worker processes compared with one
IO_EXECUTIONS_PER_PROCESS = 64  # (d): two executions per thread of concurrency 32
ALL_ITEMS = "abcdefghi"
ONLY_HELP = "run only these items, e.g. d or ad (default: all, and the profile)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="workers' poll, seconds")
    parser.add_argument("--only", default=ALL_ITEMS, help=ONLY_HELP)
    args = parser.parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    os.environ["ZART_BENCH_DB"] = args.db  # worker processes inherit these two
    os.environ["ZART_BENCH_POLL"] = str(args.poll_interval)

    import django

    django.setup()
    from django.core.management import call_command

    from bench.profiling import profile

    call_command("migrate", verbosity=0)
    sizes = QUICK if args.quick else FULL
    db, poll_interval = args.db, args.poll_interval
    measurements: dict[str, Callable[[], list[Figure]]] = {
        "a": lambda: _step(db, sizes),
        "b": lambda: _versus(db, sizes, poll_interval),
        "c": lambda: [*_latency(db, sizes, poll_interval), *_wakeups(db, sizes)],
        "d": lambda: _io_scaling(db, sizes),
        "f": lambda: _memory(db, sizes, args.quick),
        "e": lambda: [*_claims(db, sizes), *_big_tables(db, args.quick)],
        "i": lambda: _inbox(db, sizes),
        "g": lambda: _resumes(db, sizes),
        "h": lambda: _fanout(db, sizes),
    }
    figures = [f for item, measure in measurements.items() if item in args.only for f in measure()]
    report = (
        _timed(f"profile ({sizes.profile_approvals} approvals)", profile, sizes.profile_approvals)
        if args.only == ALL_ITEMS
        else "(not run: --only)"
    )
    result = {
        "db": args.db,
        "server": _server_version(),
        "poll_interval": args.poll_interval,
        "figures": [f.as_dict() for f in sorted(figures, key=lambda f: f.item)],
        "profile": report,
    }
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)
    return 0


def _timed(what: str, fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)``, saying what runs and how long it took on stderr."""
    print(f"  {what} ...", end="", file=sys.stderr, flush=True)
    start = time.perf_counter()
    value = fn(*args)
    print(f" {time.perf_counter() - start:.1f}s", file=sys.stderr, flush=True)
    return value


def _step(db: str, sizes: Sizes) -> list[Figure]:
    """(a): one step end to end in a 1000-step workflow beside one raw insert+commit."""
    from bench.results import Figure
    from bench.steps import step_cost
    from bench.timing import spread

    n, rounds = sizes.chain_steps, sizes.chain_rounds
    what = f"a {n}-step workflow x {rounds}, beside {sizes.reference_rows} raw and ORM rows"
    cost = _timed(what, step_cost, n, rounds, sizes.reference_rows)
    step_us, insert_us, orm_us = cost.step * 1e6, cost.insert * 1e6, cost.orm * 1e6
    on_postgres = db == "postgres"
    details = {"steps": n, "rounds": spread(cost.rounds, 1e6), "orm_create_us": orm_us}
    return [
        Figure(
            "a",
            db,
            f"a no-op step end to end, {n}-step workflow, 1 worker (vs raw cursor insert+commit)",
            step_us,
            "us",
            insert_us,
            "us",
            "ratio <= 1.5" if on_postgres else "<= reference + 100 us",
            step_us <= 1.5 * insert_us if on_postgres else step_us <= insert_us + 100,
            details,
        ),
        Figure(
            "a",
            db,
            "the same row through the ORM's create() (vs raw cursor insert+commit)",
            orm_us,
            "us",
            insert_us,
            "us",
        ),
    ]


def _versus(db: str, sizes: Sizes, poll_interval: float) -> list[Figure]:
    """(b): approval workflows per second on one worker, beside DBOS Transact's."""
    from bench.results import Figure
    from bench.run import INSTALL_HINT
    from bench.timing import spread
    from bench.versus import compare

    what = f"{sizes.approvals} approvals x {sizes.approval_rounds}, ours and DBOS's alternated"
    versus = _timed(what, compare, db, sizes.approvals, sizes.approval_rounds, poll_interval)
    details: dict[str, object] = {
        "approvals": sizes.approvals,
        "ours": spread(versus.ours_runs),
        "ours_decision_once_parked": spread(versus.parked_runs),
        "dbos_version": versus.dbos_version,
    }
    if versus.dbos is None:
        details["why"] = f"DBOS comparison skipped: dbos is not installed ({INSTALL_HINT})"
        return [
            Figure(
                "b",
                db,
                "approval workflows, 1 worker (DBOS not installed: comparison skipped)",
                versus.ours,
                "wf/s",
                math.nan,
                "wf/s",
                "ratio >= 3",
                None,
                details,
            )
        ]
    details["dbos"] = spread(versus.dbos_runs)
    parked = {**details, "ours": spread(versus.parked_runs)}
    return [
        Figure(
            "b",
            db,
            f"approval workflows, 1 worker, decision sent at the start as DBOS's"
            f" (vs DBOS Transact {versus.dbos_version})",
            versus.ours,
            "wf/s",
            versus.dbos,
            "wf/s",
            "ratio >= 3",
            versus.ours >= 3 * versus.dbos,
            details,
        ),
        Figure(
            "b",
            db,
            "the same, our decision offered once parked: a park and a second claim each"
            f" (vs DBOS Transact {versus.dbos_version}, decision at the start)",
            versus.parked,
            "wf/s",
            versus.dbos,
            "wf/s",
            "",
            None,
            parked,
        ),
    ]


def _latency(db: str, sizes: Sizes, poll_interval: float) -> list[Figure]:
    """(c): offer_event to the next step's start over several runs: the median of the runs'
    p50 (target) and p95, with their spread, beside the poll interval."""
    from bench.latency import latency_runs
    from bench.results import Figure
    from bench.timing import median, spread

    runs, samples = sizes.latency_runs, sizes.latency_samples
    what = f"offer_event -> step ({runs} runs x {samples} samples, poll {poll_interval}s)"
    results = _timed(what, latency_runs, runs, samples, poll_interval)
    limit_ms = 5 if db == "postgres" else 20
    figures = []
    for quantile in ("p50", "p95"):
        values = [getattr(run, quantile) * 1000 for run in results]
        value = median(values)
        target = quantile == "p50"
        figures.append(
            Figure(
                "c",
                db,
                f"offer_event -> next step {quantile}, median of {runs} runs"
                f" ({min(values):.1f}-{max(values):.1f} ms) (ref: poll interval)",
                value,
                "ms",
                poll_interval * 1000,
                "ms",
                f"p50 <= {limit_ms} ms" if target else "",
                value <= limit_ms if target else None,
                {
                    "runs": spread(values),
                    "samples_per_run": samples,
                    "all_ms": [[x * 1000 for x in run.samples] for run in results],
                },
            )
        )
    return figures


def _wakeups(db: str, sizes: Sizes) -> list[Figure]:
    """(c): how many of several idle workers one due execution wakes (target: one)."""
    from bench.latency import IDLE_POLL, wakeups
    from bench.results import Figure
    from bench.timing import median

    n = sizes.idle_workers
    what = f"wake-ups: {sizes.wake_samples} due executions, {n} idle workers"
    result = _timed(what, wakeups, n, sizes.wake_samples)
    woken = median(result.woken)
    ran = all(result.ran)
    label = (
        f"idle workers woken by one due execution, median of {len(result.woken)}"
        f" ({sum(result.claim_calls)} claim calls in all)"
    )
    if not ran:
        label += f"; NOT run within 3 s: no wake-up, waits for a poll ({IDLE_POLL:.0f} s here)"
    return [
        Figure(
            "c",
            db,
            label,
            woken,
            "woken",
            n,
            "idle",
            "1 woken, and it runs",
            ran and woken == 1,
            {"woken": result.woken, "claim_calls": result.claim_calls, "ran": result.ran},
        )
    ]


def _io_scaling(db: str, sizes: Sizes) -> list[Figure]:
    """(d): I/O-bound steps on one worker process of concurrency 32, then on four: the rate once
    every thread is busy (the target's), beside the whole run's and the old method's (see
    ``bench.scaling``)."""
    from bench.results import Figure
    from bench.scaling import CONCURRENCY, PAUSE, connections_needed, io_rate

    steps, per_process = sizes.io_steps, IO_EXECUTIONS_PER_PROCESS
    ideal = CONCURRENCY / PAUSE
    one = _timed(
        f"{per_process} x {steps} I/O steps, 1 worker process", io_rate, 1, per_process, steps
    )
    figures = [
        Figure(
            "d",
            db,
            f"{PAUSE * 1000:.0f} ms I/O steps, 1 worker process, concurrency {CONCURRENCY}"
            f" (ref: {CONCURRENCY} / {PAUSE * 1000:.0f} ms); {one.bodies}/{one.steps} bodies",
            one.rate,
            "steps/s",
            ideal,
            "steps/s",
            "ratio >= 0.80, no double run",
            one.rate >= 0.8 * ideal and one.doubles == 0 and one.bodies == one.steps,
            vars(one),
        )
    ]
    p = IO_PROCESSES
    label = (
        f"{PAUSE * 1000:.0f} ms I/O steps, {p} worker processes (vs 1), concurrency {CONCURRENCY}"
    )
    room = _connection_room(db)
    if room is not None and room < connections_needed(p):
        why = (
            f"not run: {p} workers may hold {connections_needed(p)} connections,"
            f" the server has room for {room}"
        )
        figures.append(
            Figure(
                "d",
                db,
                f"{label}; {why}",
                math.nan,
                "steps/s",
                one.rate,
                "steps/s",
                "ratio >= 3.5, no double run",
                None,
                {"why": why},
            )
        )
        return figures
    what = f"{per_process * p} x {steps} I/O steps, {p} worker processes"
    many = _timed(what, io_rate, p, per_process * p, steps)
    figures.append(
        Figure(
            "d",
            db,
            f"{label}; {many.bodies}/{many.steps} bodies, {many.doubles} run twice",
            many.rate,
            "steps/s",
            one.rate,
            "steps/s",
            "ratio >= 3.5, no double run",
            many.rate >= 3.5 * one.rate and many.doubles == 0 and many.bodies == many.steps,
            {**vars(many), "cpu_count": os.cpu_count()},
        )
    )
    return [*figures, _io_floor(db, many, steps), *_io_scaling_whole(db, one, many, steps)]


def _io_floor(db: str, many: IoRun, steps: int) -> Figure:
    """(d)'s floor on this machine: the same threads and waits with one bare insert+commit a
    step and no engine, four processes against one (see ``bench.floor``); beside it the CPU a
    row cost and what a step cost the engine's run."""
    from bench.floor import floor_rate
    from bench.results import Figure
    from bench.scaling import CONCURRENCY, PAUSE

    p, per_process = many.processes, IO_EXECUTIONS_PER_PROCESS
    rows = per_process * steps // CONCURRENCY  # each thread's rows: as many as the engine's steps
    one = _timed("the floor of (d), 1 process", floor_rate, 1, rows)
    four = _timed(f"the floor of (d), {p} processes", floor_rate, p, rows)
    spent = ", ".join(f"{k} {v:.2f}" for k, v in four.cpu_ms_per_row.items())
    engine = ", ".join(f"{k} {v:.2f}" for k, v in many.cpu_ms_per_step.items() if k != "client")
    return Figure(
        "d",
        db,
        f"the floor: the same threads and {PAUSE * 1000:.0f} ms waits, one bare insert+commit a"
        f" step and no engine, {p} processes (vs 1); CPU ms a row: {spent} (the engine's a step:"
        f" {engine})",
        four.rate,
        "rows/s",
        one.rate,
        "rows/s",
        details={"one": vars(one), "many": vars(four)},
    )


def _io_scaling_whole(db: str, one: IoRun, many: IoRun, steps: int) -> list[Figure]:
    """(d) beside the target: the same runs' whole-run rates, and the old method's (the client
    starts the executions with the clock running, the workers not warmed up)."""
    from bench.results import Figure
    from bench.scaling import started_with_the_clock

    p, per_process = many.processes, IO_EXECUTIONS_PER_PROCESS
    old = [
        _timed(
            f"old method, {n} worker process(es)", started_with_the_clock, n, per_process * n, steps
        )
        for n in (1, p)
    ]
    return [
        Figure(
            "d",
            db,
            f"the same, whole run: from due to the last completion, {p} processes (vs 1)",
            many.whole_rate,
            "steps/s",
            one.whole_rate,
            "steps/s",
        ),
        Figure(
            "d",
            db,
            f"the old method: clock from the client's first start, cold workers, {p} (vs 1)",
            old[1],
            "steps/s",
            old[0],
            "steps/s",
        ),
    ]


def _connection_room(db: str) -> int | None:
    """How many more connections the PostgreSQL server takes (None on SQLite: no limit)."""
    if db != "postgres":
        return None
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
            " - (SELECT count(*) FROM pg_stat_activity)"
        )
        return int(cursor.fetchone()[0])


def _memory(db: str, sizes: Sizes, quick: bool) -> list[Figure]:
    """(f): a worker's RSS after many executions beside its RSS after 1,000."""
    from bench.memory import steady_memory
    from bench.results import Figure

    early, late = sizes.memory_early, sizes.memory_late
    memory = _timed(
        f"worker RSS after {early:,} and {late:,} executions", steady_memory, early, late
    )
    note = f" (quick: {late:,}, not 100,000)" if quick else ""
    return [
        Figure(
            "f",
            db,
            f"worker RSS after {late:,} executions (vs after {early:,}){note}",
            memory.late_mib,
            "MiB",
            memory.early_mib,
            "MiB",
            "<= reference + 20 MiB",
            memory.late_mib - memory.early_mib <= 20,
            vars(memory),
        )
    ]


def _resumes(db: str, sizes: Sizes) -> list[Figure]:
    """(g), beyond the issue's targets: one resume's time and queries as the recorded history grows."""
    from bench.results import Figure
    from bench.resume import resume_cost

    costs = [
        _timed(f"resume with {n} recorded steps", resume_cost, n, sizes.resume_repeats)
        for n in sizes.resume_steps
    ]
    base = costs[0]
    return [
        Figure(
            "g",
            db,
            f"one resume, {cost.steps} recorded steps (vs {base.steps})",
            cost.seconds * 1000,
            "ms",
            base.seconds * 1000,
            "ms",
            "1 step query, <= linear",
            cost.step_queries == 1
            and cost.queries == base.queries
            and cost.seconds / base.seconds <= 1.5 * cost.steps / base.steps,
            {
                "queries": cost.queries,
                "step_queries": cost.step_queries,
                "marginal_us_per_step": (
                    (cost.seconds - base.seconds) / (cost.steps - base.steps) * 1e6
                    if cost is not base
                    else None
                ),
            },
        )
        for cost in costs
    ]


def _claims(db: str, sizes: Sizes) -> list[Figure]:
    """(e): claim_due latency with many parked executions beside it with few, p50 and p95."""
    from bench.claims import claim_times
    from bench.results import Figure

    title = f"claim_due with {sizes.parked_small:,}, {sizes.parked_large:,}, {sizes.parked_small:,} parked"
    small, large = _timed(
        title, claim_times, sizes.parked_small, sizes.parked_large, sizes.claim_repeats
    )
    details = {"small": vars(small), "large": vars(large), "repeats": sizes.claim_repeats}
    figures = []
    for what, p50s, p95s in (
        ("nothing due", (small.empty_p50, large.empty_p50), (small.empty_p95, large.empty_p95)),
        ("10 due", (small.due_p50, large.due_p50), (small.due_p95, large.due_p95)),
    ):
        for quantile, (at_small, at_large) in (("p50", p50s), ("p95", p95s)):
            target = quantile == "p50"
            figures.append(
                Figure(
                    "e",
                    db,
                    f"claim_due {quantile}, {what}, {large.parked:,} parked (vs {small.parked:,})",
                    at_large * 1000,
                    "ms",
                    at_small * 1000,
                    "ms",
                    "ratio <= 1.5" if target else "",
                    at_large / at_small <= 1.5 if target else None,
                    details,
                )
            )
    return figures


def _big_tables(db: str, quick: bool) -> list[Figure]:
    """(e): a page of the admin's list, the inbox and the API with a million finished and a
    hundred thousand parked executions (a tenth with ``quick``) beside the same at 10,000."""
    from bench.inbox import big_table_figures

    return _timed("big tables: admin list, inbox, API", big_table_figures, db, quick, "e")


def _inbox(db: str, sizes: Sizes) -> list[Figure]:
    """(i), beyond the issue's targets: the manager's pages with many open requests beside them
    with a tenth as many."""
    from bench.inbox import page_costs
    from bench.results import Figure

    small, large = sizes.inbox_small, sizes.inbox_large
    title = f"manager's pages with {small:,} then {large:,} open requests"
    costs = _timed(title, page_costs, small, large, sizes.inbox_repeats)
    return [
        Figure(
            "i",
            db,
            f"{at_large.page}, {large:,} open (vs {small:,}), {at_large.queries} queries",
            at_large.p50 * 1000,
            "ms",
            at_small.p50 * 1000,
            "ms",
            "same queries, ratio <= 1.5",
            at_large.queries == at_small.queries and at_large.p50 / at_small.p50 <= 1.5,
            {
                "url": at_large.url,
                "queries": {"small": at_small.queries, "large": at_large.queries},
                "p95_ms": {"small": at_small.p95 * 1000, "large": at_large.p95 * 1000},
                "repeats": sizes.inbox_repeats,
            },
        )
        for at_small, at_large in costs
    ]


def _fanout(db: str, sizes: Sizes) -> list[Figure]:
    """(h), beyond the issue's targets: members per second of one parallel group, beside the same steps run one after
    another in one execution, and beside members run as executions of their own."""
    from bench.fanout import group_rate, separate_rate, sequence_rate
    from bench.results import Figure
    from zart_django import conf

    n, width = sizes.fanout_members, int(conf.get("CONCURRENCY"))
    steps = _timed(f"{n} no-op steps in a row", sequence_rate, n, 0.0)
    group = _timed(f"{n} no-op members, {width} at a time", group_rate, n, 0.0, width)
    separate = _timed(f"{n} no-op members as executions", separate_rate, n)
    figures = [
        Figure(
            "h",
            db,
            f"fan-out: {n} no-op members ({width} at a time) vs steps in a row",
            group,
            "members/s",
            steps,
            "steps/s",
            details={"members": n, "width": width},
        ),
        Figure(
            "h",
            db,
            f"fan-out: {n} no-op members as separate executions vs steps in a row",
            separate,
            "members/s",
            steps,
            "steps/s",
            details={"members": n},
        ),
    ]
    io = sizes.io_members
    pause_ms = IO_PAUSE * 1000
    what = f"{sizes.io_sequence} {pause_ms:.0f} ms steps in a row"
    io_steps = _timed(what, sequence_rate, sizes.io_sequence, IO_PAUSE)
    for io_width in IO_WIDTHS:
        what = f"{io} {pause_ms:.0f} ms members, {io_width} at a time"
        rate = _timed(what, group_rate, io, IO_PAUSE, io_width)
        figures.append(
            Figure(
                "h",
                db,
                f"fan-out: {io} {pause_ms:.0f} ms members ({io_width} at a time) vs steps in a row",
                rate,
                "members/s",
                io_steps,
                "steps/s",
                details={"members": io, "width": io_width, "pause_s": IO_PAUSE},
            ),
        )
    return figures


def _server_version() -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SHOW server_version")
            return f"PostgreSQL {cursor.fetchone()[0]}"
        cursor.execute("SELECT sqlite_version()")
        return f"SQLite {cursor.fetchone()[0]}"


if __name__ == "__main__":
    raise SystemExit(main())

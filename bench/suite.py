"""``python -m bench.suite --db sqlite|postgres --out FILE``: every measurement on one database.

``bench.run`` starts one suite process per database, after creating the benchmark database, and
reads back the JSON it writes: the figures, the server version and the profile report. Django is
set up in ``main``, so the measurement modules are imported after it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from bench.results import Figure

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    approvals: int
    reference_rows: int
    chain_steps: int
    chain_rounds: int
    latency_samples: int
    parked_small: int
    parked_large: int
    claim_repeats: int
    resume_steps: tuple[int, ...]
    resume_repeats: int
    profile_approvals: int
    fanout_members: int
    io_members: int
    io_sequence: int
    inbox_small: int
    inbox_large: int
    inbox_repeats: int


FULL = Sizes(
    300,
    500,
    500,
    3,
    40,
    10_000,
    1_000_000,
    100,
    (10, 100, 1000),
    3,
    200,
    1000,
    1000,
    40,
    10_000,
    100_000,
    9,
)
QUICK = Sizes(
    40,
    100,
    100,
    1,
    8,
    10_000,
    100_000,
    20,
    (10, 100, 1000),
    1,
    20,
    1000,
    200,
    10,
    2_000,
    20_000,
    5,
)
IO_PAUSE = 0.05  # seconds an I/O-like fan-out member sleeps
IO_WIDTHS = (4, 32)  # max_concurrency of the I/O-like groups: the default, and a wide one
WORKER_PROCESSES = (1, 2, 4)  # on PostgreSQL; SQLite gets one (it has a single writer anyway)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.suite", description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], required=True)
    parser.add_argument("--out", required=True, help="where to write the JSON results")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    parser.add_argument("--poll-interval", type=float, default=0.2, help="workers' poll, seconds")
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
    figures = [
        *_checkpoints(args.db, sizes),
        *_resumes(args.db, sizes),
        *_throughput(args.db, sizes),
        *_latency(args.db, sizes, args.poll_interval),
        *_claims(args.db, sizes),
        *_inbox(args.db, sizes),
        *_fanout(args.db, sizes),
    ]
    report = _timed(
        f"profile ({sizes.profile_approvals} approvals)", profile, sizes.profile_approvals
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


def _checkpoints(db: str, sizes: Sizes) -> list[Figure]:
    """Item 2: step checkpoints per second beside raw inserts per second."""
    from bench import rows
    from bench.checkpoints import compare
    from bench.results import Figure

    rows.clear()
    what = f"step checkpoints ({sizes.chain_steps} steps x {sizes.chain_rounds})"
    engine, raw = _timed(what, compare, sizes.chain_steps, sizes.chain_rounds)
    return [
        Figure(
            2,
            db,
            "step checkpoints vs raw insert+commit",
            engine,
            "steps/s",
            raw,
            "rows/s",
            "ratio >= 0.50",
            engine / raw >= 0.5,
            {"steps": sizes.chain_steps, "rounds": sizes.chain_rounds},
        )
    ]


def _resumes(db: str, sizes: Sizes) -> list[Figure]:
    """Item 6: one resume's time and queries as the recorded history grows."""
    from bench.results import Figure
    from bench.resume import resume_cost

    costs = [
        _timed(f"resume with {n} recorded steps", resume_cost, n, sizes.resume_repeats)
        for n in sizes.resume_steps
    ]
    base = costs[0]
    return [
        Figure(
            6,
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


def _throughput(db: str, sizes: Sizes) -> list[Figure]:
    """Items 1 and 5: approvals per second on 1 (and 2, 4) worker processes, beside raw inserts."""
    from bench import rows
    from bench.reference import insert_commit_rate
    from bench.results import Figure
    from bench.throughput import approvals_per_second
    from zart_django import conf

    rows.clear()
    processes = WORKER_PROCESSES if db == "postgres" else WORKER_PROCESSES[:1]
    references: dict[int, float] = {}
    rates: dict[int, float] = {}
    for p in processes:  # each beside a fresh reference: the commit rate drifts on a busy machine
        what = f"raw insert+commit ({sizes.reference_rows} rows)"
        references[p] = _timed(what, insert_commit_rate, sizes.reference_rows)
        what = f"{sizes.approvals} approvals, {p} worker(s)"
        rates[p] = _timed(what, approvals_per_second, p, sizes.approvals)
    cores = os.cpu_count() or 1
    figures = [
        Figure(
            1,
            db,
            "approval workflows, 1 worker process",
            rates[1],
            "wf/s",
            references[1],
            "rows/s",
            details={
                "approvals": sizes.approvals,
                "concurrency": conf.get("CONCURRENCY"),
                "raw_commits_per_workflow": references[1] / rates[1],
            },
        )
    ]
    for p in processes[1:]:
        at_four = p == 4
        figures.append(
            Figure(
                5,
                db,
                f"approvals, {p} worker processes (vs 1), {cores} cores",
                rates[p],
                "wf/s",
                rates[1],
                "wf/s",
                "ratio >= 3.0 (>= 4 cores)" if at_four else "",
                rates[p] / rates[1] >= 3.0 if at_four and cores >= 4 else None,
                {
                    "cpu_count": cores,
                    "approvals": sizes.approvals,
                    "raw_rows_per_s": references[p],
                    "raw_commits_per_workflow": references[p] / rates[p],
                },
            )
        )
    return figures


def _latency(db: str, sizes: Sizes, poll_interval: float) -> list[Figure]:
    """Item 3: offer_event to the next step's start, p50 and p95, beside the poll interval."""
    from bench.latency import offer_to_step
    from bench.results import Figure
    from bench.timing import median, percentile

    what = f"offer_event -> step ({sizes.latency_samples} samples, poll {poll_interval}s)"
    latencies = _timed(what, offer_to_step, sizes.latency_samples, poll_interval)
    spread = {
        "samples": len(latencies),
        "min_ms": min(latencies) * 1000,
        "max_ms": max(latencies) * 1000,
        "poll_interval": poll_interval,
    }
    p50 = median(latencies) * 1000
    on_postgres = db == "postgres"
    return [
        Figure(
            3,
            db,
            "offer_event -> next step p50 (ref: poll interval)",
            p50,
            "ms",
            poll_interval * 1000,
            "ms",
            "p50 <= 10 ms" if on_postgres else "",
            p50 <= 10 if on_postgres else None,
            spread,
        ),
        Figure(
            3,
            db,
            "offer_event -> next step p95 (ref: poll interval)",
            percentile(latencies, 95) * 1000,
            "ms",
            poll_interval * 1000,
            "ms",
            details=spread,
        ),
    ]


def _claims(db: str, sizes: Sizes) -> list[Figure]:
    """Item 4: claim_due latency with many parked executions beside it with few."""
    from bench.claims import claim_times
    from bench.results import Figure

    title = f"claim_due with {sizes.parked_small:,} then {sizes.parked_large:,} parked"
    small, large = _timed(
        title, claim_times, sizes.parked_small, sizes.parked_large, sizes.claim_repeats
    )
    return [
        Figure(
            4,
            db,
            f"claim_due p50, {what}, {large.parked:,} parked (vs {small.parked:,})",
            at_large * 1000,
            "ms",
            at_small * 1000,
            "ms",
            "ratio <= 1.5",
            at_large / at_small <= 1.5,
            {"small": vars(small), "large": vars(large), "repeats": sizes.claim_repeats},
        )
        for what, at_small, at_large in (
            ("nothing due", small.empty_p50, large.empty_p50),
            ("10 due", small.due_p50, large.due_p50),
        )
    ]


def _inbox(db: str, sizes: Sizes) -> list[Figure]:
    """Item 7: the manager's pages with many open requests beside them with a tenth as many."""
    from bench.inbox import page_costs
    from bench.results import Figure

    small, large = sizes.inbox_small, sizes.inbox_large
    title = f"manager's pages with {small:,} then {large:,} open requests"
    costs = _timed(title, page_costs, small, large, sizes.inbox_repeats)
    return [
        Figure(
            7,
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
    """Item 8: members per second of one parallel group, beside the same steps run one after
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
            7,
            db,
            f"fan-out: {n} no-op members ({width} at a time) vs steps in a row",
            group,
            "members/s",
            steps,
            "steps/s",
            details={"members": n, "width": width},
        ),
        Figure(
            7,
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
                7,
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

"""``python -m bench [--quick] [--db sqlite|postgres|all]``: run the suite, print the table.

For each database this creates the benchmark database, runs ``bench.suite`` on it in a fresh
process, and drops it. PostgreSQL parts are skipped, saying why, if no server answers. The table is
printed (Markdown), everything is written to ``bench/results.json`` and the profiles to
``bench/profile.txt``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import databases
from bench.results import markdown_table
from bench.suite import ALL_ITEMS, ONLY_HELP

INSTALL_HINT = "pip install -e .[bench]"

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smaller sizes (100k parked, 2k then 20k open requests, 2,000 executions for the"
        " memory figure), fewer runs",
    )
    parser.add_argument("--db", choices=["sqlite", "postgres", "all"], default="all")
    parser.add_argument(
        "--poll-interval", type=float, default=0.2, help="workers' poll interval, seconds"
    )
    parser.add_argument("--only", default=ALL_ITEMS, help=ONLY_HELP)
    args = parser.parse_args(argv)
    machine = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": _versions(),
        "load_average_at_start": os.getloadavg(),
        "quick": args.quick,
        "only": args.only,
        "poll_interval": args.poll_interval,
    }
    print(
        f"zart-django benchmarks: {machine['cpu_count']} cores, Python {machine['python']},"
        f" worker poll interval {args.poll_interval}s{' (quick)' if args.quick else ''},"
        f" load average {machine['load_average_at_start'][0]:.2f}",
        flush=True,
    )
    print(", ".join(f"{name} {v}" for name, v in machine["packages"].items()), flush=True)
    if machine["packages"]["dbos"] == "not installed":
        print(f"DBOS comparison skipped: dbos is not installed ({INSTALL_HINT})", flush=True)
    suites: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    failed = False
    for db in ("sqlite", "postgres") if args.db == "all" else (args.db,):
        problem = databases.postgres_problem() if db == "postgres" else None
        if problem:
            skipped[db] = problem
            print(f"SKIPPED {db}: {problem}", flush=True)
            continue
        print(f"{db}:", flush=True)
        result = _run_suite(db, args.quick, args.poll_interval, args.only)
        if result is None:
            failed = True
        else:
            suites.append(result)
    machine["load_average_at_end"] = os.getloadavg()
    figures = [f for suite in suites for f in suite["figures"]]
    figures.sort(key=lambda f: (f["item"], f["db"]))
    print(f"\nload average at the end: {machine['load_average_at_end'][0]:.2f}")
    for suite in suites:
        print(f"{suite['db']}: {suite['server']}")
    print(markdown_table(figures))
    (HERE / "results.json").write_text(
        json.dumps({"machine": machine, "suites": suites, "skipped": skipped}, indent=2)
    )
    (HERE / "profile.txt").write_text(
        "\n\n".join(f"== {s['db']} ({s['server']}) ==\n{s['profile']}" for s in suites) + "\n"
    )
    print(f"\nwritten: {HERE / 'results.json'}, {HERE / 'profile.txt'}")
    return 1 if failed else 0


def _run_suite(db: str, quick: bool, poll_interval: float, only: str) -> dict[str, Any] | None:
    """Run ``bench.suite`` on a fresh ``db``; its results, or None (said on stderr) if it failed."""
    databases.create(db)
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            command = [
                sys.executable,
                "-m",
                "bench.suite",
                f"--db={db}",
                f"--out={out.name}",
                f"--poll-interval={poll_interval}",
                f"--only={only}",
            ]
            code = subprocess.call([*command, "--quick"] if quick else command, cwd=HERE.parent)
            if code != 0:
                print(f"FAILED {db}: the suite exited with status {code}", file=sys.stderr)
                return None
            return json.loads(Path(out.name).read_text())
    finally:
        databases.drop(db)


def _versions() -> dict[str, str]:
    """The versions of the packages the figures depend on ("not installed" for a missing one)."""
    found = {}
    for name in ("Django", "psycopg", "dbos"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found

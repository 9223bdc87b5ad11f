"""Target (b): approval workflows per second on one worker, beside DBOS Transact's, alternated.

Our side is ``bench.throughput.approvals_per_second`` on one worker process; DBOS's side runs in
a process of its own (``bench.dbos_side``) against the same database server: its own SQLite file
beside ours, or its own database on the same PostgreSQL server. Both clients send each decision
right after starting its workflow. Runs alternate (ours, DBOS, ours with the decision offered
once parked, ours, DBOS, …) so that a drift of the machine touches all; the medians are compared.
Without the ``dbos`` package the comparison is skipped, saying how to install it.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass

from django.conf import settings

from bench.settings import DBOS_POSTGRES_NAME, DBOS_SQLITE_PATH, POSTGRES
from bench.throughput import approvals_per_second
from bench.timing import median


@dataclass(frozen=True)
class Versus:
    """Median rates over the rounds (DBOS's None when it is not installed) and every round's:
    ours with the decision sent at the start (as DBOS's), ours with it offered once parked."""

    ours: float
    dbos: float | None
    ours_runs: list[float]
    dbos_runs: list[float]
    dbos_version: str | None
    parked: float
    parked_runs: list[float]


def dbos_version() -> str | None:
    """The installed DBOS Transact version, or None if the ``dbos`` package is missing."""
    if importlib.util.find_spec("dbos") is None:
        return None
    from importlib.metadata import version

    return version("dbos")


def dbos_url(db: str) -> str:
    """DBOS's system database: on the same server as ours, never ours."""
    if db == "postgres":
        return f"postgresql://{POSTGRES['USER']}@{POSTGRES['HOST']}:{POSTGRES['PORT']}/{DBOS_POSTGRES_NAME}"
    return f"sqlite:///{DBOS_SQLITE_PATH}"


def dbos_rate(db: str, count: int, poll: float) -> float:
    """DBOS's approvals per second, ``count`` of them, in a fresh process."""
    output = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.dbos_side",
            f"--url={dbos_url(db)}",
            f"--count={count}",
            f"--poll={poll}",
        ],
        cwd=settings.BASE_DIR,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    return float(json.loads(output.strip().splitlines()[-1])["rate"])


def compare(db: str, count: int, rounds: int, poll: float) -> Versus:
    """``rounds`` alternated runs of ``count`` approvals each, ours first in each round."""
    version = dbos_version()
    ours: list[float] = []
    theirs: list[float] = []
    parked: list[float] = []
    for _ in range(rounds):
        ours.append(approvals_per_second(1, count))
        if version is not None:
            theirs.append(dbos_rate(db, count, poll))
        parked.append(approvals_per_second(1, count, decide_at_start=False))
    dbos = median(theirs) if theirs else None
    return Versus(median(ours), dbos, ours, theirs, version, median(parked), parked)

"""Target (d)'s physical floor: the same I/O-bound shape with no engine in it, on this machine.

Each process runs ``CONCURRENCY`` threads; each thread waits 50 ms (``time.sleep``, as a step's
body does), then inserts and commits one row of the step table's shape on the benchmark
database, ``steps`` times. On PostgreSQL the threads share a psycopg pool of ``POOL``
connections a process, as a worker's steps share Django's; on SQLite each thread has its own
``sqlite3`` connection (WAL, one writer at a time, as the engine's). The rate is taken between
the 10th and the 90th percentile of the rows' commits, as ``bench.scaling`` takes the steps'.
Four such processes against one tell how far these cores can scale this shape at all: the
engine's ratio is judged against 3.5, and this one shows what the machine leaves for it. The CPU
each row cost the processes and (on PostgreSQL) the server is kept beside it.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from typing import Any

from django.conf import settings
from django.db import connection

from bench.scaling import CONCURRENCY, PAUSE, POOL, server_cpu

TABLE = "bench_floor"


@dataclass(frozen=True)
class FloorRun:
    """One measurement: rows per second between the 10th and 90th percentile of the commits,
    rows committed, and CPU milliseconds a row cost the processes and the server."""

    processes: int
    rate: float
    rows: int
    cpu_ms_per_row: dict[str, float]


def floor_rate(processes: int, steps: int) -> FloorRun:
    """Rows per second of ``processes`` × ``CONCURRENCY`` threads, each ``steps`` times: a 50 ms
    wait, then one insert+commit."""
    _create_table()
    forked = multiprocessing.get_context("fork")  # the child touches no connection of ours
    results: Any = forked.Queue()
    go, done = forked.Event(), forked.Event()
    where = dict(settings.DATABASES["default"])
    workers = [
        forked.Process(target=_process, args=(where, steps, results, go, done))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    try:
        ready = [results.get(timeout=60) for _ in workers]  # each opened its connections
        assert all(r == "ready" for r in ready)
        server_before = server_cpu()
        go.set()
        outcomes = [results.get(timeout=600) for _ in workers]
        server_after = server_cpu()
    finally:
        done.set()
        for worker in workers:
            worker.join(30)
    ends = sorted(t for commits, _ in outcomes for t in commits)
    rows = len(ends)
    first, last = rows // 10, rows * 9 // 10
    cpu = {"processes": sum(spent for _, spent in outcomes)}
    if server_before is not None and server_after is not None:
        cpu["server"] = server_after - server_before
    _drop_table()
    return FloorRun(
        processes,
        (last - first) / (ends[last] - ends[first]),
        rows,
        {k: v / rows * 1000 for k, v in cpu.items()},
    )


def _create_table() -> None:
    _drop_table()
    key = "bigserial" if connection.vendor == "postgresql" else "integer"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {TABLE} (id {key} PRIMARY KEY, execution_id varchar(200) NOT NULL,"
            " position integer NOT NULL, result text, finished_at varchar(40) NOT NULL,"
            " UNIQUE (execution_id, position))"
        )


def _drop_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")


def _process(where: dict[str, Any], steps: int, results: Any, go: Event, done: Event) -> None:
    """One floor process: open the connections, say so, wait for ``go``, run the threads, put
    (commit times, CPU seconds) on ``results``, and keep the connections until ``done``."""
    insert = _inserter(where)
    results.put("ready")
    go.wait()
    commits: list[float] = []
    started = sum(os.times()[:2])

    def thread(number: int) -> None:
        for position in range(steps):
            time.sleep(PAUSE)
            insert(f"{os.getpid()}-{number}", position)
            commits.append(time.time())

    threads = [threading.Thread(target=thread, args=(n,)) for n in range(CONCURRENCY)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results.put((commits, sum(os.times()[:2]) - started))
    done.wait()


def _inserter(where: dict[str, Any]) -> Any:
    """A function that inserts and commits one row, safe to call from many threads; its
    connections take the benchmark database's ``OPTIONS``, as the engine's do."""
    sql = f"INSERT INTO {TABLE} (execution_id, position, result, finished_at) VALUES"
    options = {k: v for k, v in where["OPTIONS"].items() if k != "pool"}
    if where["ENGINE"].endswith("postgresql"):
        from psycopg_pool import ConnectionPool

        pool = ConnectionPool(
            min_size=POOL,
            max_size=POOL,
            kwargs={
                "host": where["HOST"],
                "port": where["PORT"],
                "user": where["USER"],
                "dbname": where["NAME"],
                "autocommit": True,
                **options,
            },
        )
        pool.wait()

        def insert_postgres(execution_id: str, position: int) -> None:
            with pool.connection() as conn:
                conn.execute(f"{sql} (%s, %s, '0', %s)", (execution_id, position, time.time()))

        return insert_postgres
    local = threading.local()

    def insert_sqlite(execution_id: str, position: int) -> None:
        db = getattr(local, "db", None)
        if db is None:
            db = local.db = sqlite3.connect(
                where["NAME"], timeout=options["timeout"], isolation_level=None
            )
            db.executescript(options["init_command"])
        db.execute(f"{sql} (?, ?, '0', ?)", (execution_id, position, time.time()))

    return insert_sqlite

"""Benchmark settings: the demo project on a dedicated benchmark database.

``ZART_BENCH_DB`` picks the database: ``sqlite`` (``var/bench-zart.sqlite3``, the default) or
``postgres`` (database ``zart_bench``, or ``ZART_BENCH_PG_NAME`` when two runs share a server: each
run drops and recreates its database; host, port and user as in the demo settings).
``ZART_BENCH_POLL`` sets the workers' poll interval in seconds. PostgreSQL connections prepare
the statements psycopg runs five times (``prepare_threshold``), as the README advises.

PostgreSQL's JIT is off for the benchmark's connections, as the README advises for the app's
(``-c jit=off``): left on, it compiles the inbox's count queries once the table is large, which
costs more than running them (1.5 s of a 1.6 s query at 20,000 open requests).
"""

import os

from demo_project.settings import *  # noqa: F403
from demo_project.settings import BASE_DIR, POSTGRES, SQLITE

SQLITE_PATH = BASE_DIR / "var" / "bench-zart.sqlite3"
POSTGRES_NAME = os.environ.get("ZART_BENCH_PG_NAME", "zart_bench")
DBOS_SQLITE_PATH = BASE_DIR / "var" / "bench-dbos.sqlite3"  # DBOS's side of target (b)
DBOS_POSTGRES_NAME = f"{POSTGRES_NAME}_dbos"

POOL_SIZE = int(os.environ.get("ZART_BENCH_POOL", "0"))
"""``ZART_BENCH_POOL=N``: Django's connection pool of at most N connections a process, as the
README advises for many workers on PostgreSQL (target (d) sets it for its workers)."""
POSTGRES_OPTIONS = {
    "options": "-c jit=off",
    "prepare_threshold": 5,  # psycopg prepares the checkpoint (the README's advice, no pooler)
    **({"pool": {"min_size": 2, "max_size": POOL_SIZE}} if POOL_SIZE else {}),
}

ROOT_URLCONF = "bench.urls"
DEBUG = False  # with DEBUG on, Django keeps every query in memory: a leak and a cost here
DATABASES = {
    "default": (
        {**POSTGRES, "NAME": POSTGRES_NAME, "OPTIONS": POSTGRES_OPTIONS}
        if os.environ.get("ZART_BENCH_DB") == "postgres"
        else {**SQLITE, "NAME": SQLITE_PATH}
    )
}
ZART = {
    "POLL_INTERVAL": float(os.environ.get("ZART_BENCH_POLL", "0.2")),
    "WORKFLOW_MODULES": ["bench.workflows"],
}

"""Benchmark settings: the demo project on a dedicated benchmark database.

``ZART_BENCH_DB`` picks the database: ``sqlite`` (``var/bench-zart.sqlite3``, the default) or
``postgres`` (database ``zart_bench``, or ``ZART_BENCH_PG_NAME``, so runs side by side on one
server do not drop each other's; host, port and user as in the demo settings).
``ZART_BENCH_POLL`` sets the workers' poll interval in seconds.
"""

import os

from demo_project.settings import *  # noqa: F403
from demo_project.settings import BASE_DIR, POSTGRES, SQLITE

SQLITE_PATH = BASE_DIR / "var" / "bench-zart.sqlite3"
POSTGRES_NAME = os.environ.get("ZART_BENCH_PG_NAME", "zart_bench")

ROOT_URLCONF = "bench.urls"
DEBUG = False  # with DEBUG on, Django keeps every query in memory: a leak and a cost here
DATABASES = {
    "default": (
        {**POSTGRES, "NAME": POSTGRES_NAME}
        if os.environ.get("ZART_BENCH_DB") == "postgres"
        else {**SQLITE, "NAME": SQLITE_PATH}
    )
}
ZART = {
    "POLL_INTERVAL": float(os.environ.get("ZART_BENCH_POLL", "0.2")),
    "WORKFLOW_MODULES": ["bench.workflows"],
}

"""Test settings: the demo project on SQLite (default) or PostgreSQL (ZART_DB=postgres).

Worker subprocesses started by tests get ZART_DB_NAME, the name of the test database.
ZART_SQLITE_PLAIN=1 uses a project's plain SQLite settings; ZART_TEST_LEASE,
ZART_TEST_MAX_RECOVERIES and ZART_TEST_RETENTION set LEASE, MAX_RECOVERIES and RETENTION, so a
test can give the workers it starts short leases (monkeypatch.setenv before start_worker);
ZART_TEST_PG_POOL=N gives PostgreSQL workers Django's connection pool of at most N connections;
ZART_TEST_LOG_LEVEL=DEBUG makes the zart_django logger (a worker's log) that verbose;
ZART_TEST_CLOCK_SKEW=60 puts the process's wall clock a minute ahead (as Django reads it).
ZART_TEST_WORKFLOW_MODULES (comma-separated) starts a worker with fewer durable tasks, as code
from before a deploy added them.
"""

import os
from datetime import timedelta

from django.utils import timezone

from demo_project.settings import *  # noqa: F403
from demo_project.settings import BASE_DIR, DATABASES
from tests.services import redis_address

# One test database per pytest process, so runs side by side do not share one.
_RUN = os.getpid()
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    (BASE_DIR / "var").mkdir(exist_ok=True)
    test_name = os.environ.get("ZART_DB_NAME", str(BASE_DIR / "var" / f"test-zart-{_RUN}.sqlite3"))
    DATABASES["default"]["NAME"] = test_name
    DATABASES["default"]["TEST"] = {"NAME": test_name}
    if os.environ.get("ZART_SQLITE_PLAIN"):
        # What `startproject` writes: no transaction_mode, the default timeout, no WAL.
        DATABASES["default"]["OPTIONS"] = {}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"test_zart_{_RUN}"}
    # The README's advice: psycopg prepares the engine's statements (the tests run them so).
    DATABASES["default"]["OPTIONS"] = {"prepare_threshold": 5}
    if os.environ.get("ZART_TEST_PG_POOL"):
        # Django's connection pool, at most ZART_TEST_PG_POOL connections, named for the test.
        DATABASES["default"]["OPTIONS"] |= {
            "pool": {"min_size": 1, "max_size": int(os.environ["ZART_TEST_PG_POOL"])},
            "application_name": "zart-pool-test",
        }

ZART = {
    "POLL_INTERVAL": 0.05,
    "LEASE": float(os.environ.get("ZART_TEST_LEASE", "2")),
    "MAX_RECOVERIES": int(os.environ.get("ZART_TEST_MAX_RECOVERIES", "10")),
    "WORKFLOW_MODULES": os.environ.get(
        "ZART_TEST_WORKFLOW_MODULES",
        ",".join(
            (
                "tests.workflows",
                "tests.deploy_workflows",
                "tests.values_workflows",
                "tests.child_workflows",
                "tests.parallel_workflows",
                "tests.async_workflows",
                "demo_project.approval.orders",
                "demo_project.approval.teams",
                "demo_project.approval.rates",
            )
        ),
    ).split(","),
    "RETENTION": os.environ.get("ZART_TEST_RETENTION"),
}
# Mail stays in memory; worker processes a test starts write it to ZART_TEST_EMAIL_DIR if set.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
if os.environ.get("ZART_TEST_EMAIL_DIR"):
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = os.environ["ZART_TEST_EMAIL_DIR"]
ZART["APPROVALS_BASE_URL"] = "https://ops.example.com/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

INSTALLED_APPS = [*INSTALLED_APPS, "django_q"]  # noqa: F405
ZART["DISPATCH"] = os.environ.get("ZART_DISPATCH", "worker")
_REDIS_HOST, _REDIS_PORT = redis_address()  # ZART_REDIS_PORT, read by tests/services.py too
Q_CLUSTER = {
    # A name per test run: it keys the Redis queue, so runs side by side do not share tasks.
    "name": os.environ.get("ZART_Q_NAME", f"zart-test-{_RUN}"),
    "workers": 2,
    "timeout": 60,
    "retry": 120,
    "catch_up": False,
    "redis": {"host": _REDIS_HOST, "port": _REDIS_PORT, "db": 0},
}

if os.environ.get("ZART_TEST_CLOCK_SKEW"):
    # A host whose clock is off: every "now" this process takes in Python is skewed.
    _skew = timedelta(seconds=float(os.environ["ZART_TEST_CLOCK_SKEW"]))
    _host_now = timezone.now
    timezone.now = lambda: _host_now() + _skew

if os.environ.get("ZART_TEST_LOG_LEVEL"):
    LOGGING = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"line": {"format": "%(asctime)s %(levelname)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "line"}},
        "loggers": {
            "zart_django": {"handlers": ["stderr"], "level": os.environ["ZART_TEST_LOG_LEVEL"]}
        },
    }

"""The services some tests need (PostgreSQL, its server binaries, Redis, Chromium, the package
index): where they
are, and what their absence means. The one place that decides "available", "skip" or "fail", for ``make test`` and
for pytest alike.

A missing service skips what needs it, with a message saying why (right on a laptop). With
``ZART_REQUIRE_SERVICES=1`` (``.ci/run`` sets it) a missing service fails the run instead, so CI
cannot pass by skipping the PostgreSQL run, the django-q2 tests or the browser test.

Addresses: PostgreSQL at ``PGHOST``:``PGPORT`` (the demo settings read the same variables), its
server binaries (initdb, pg_ctl: the fault tests start a private cluster) under
/usr/lib/postgresql/*/bin, Redis at 127.0.0.1:``ZART_REDIS_PORT``, Chromium at ``ZART_CHROMIUM``
(default: ``chromium`` on the PATH, else /usr/bin/chromium), the package index wherever pip's
configuration points (the packaging test installs the wheel's dependencies from it).

``python -m tests.services NAME...`` prints one line per service and exits 0 if all are
available, 2 if one is missing and may be skipped, 1 if one is missing and required.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from enum import Enum

REQUIRE = "ZART_REQUIRE_SERVICES"
SERVICES = ("postgres", "postgres-binaries", "redis", "chromium", "package-index")


class Verdict(Enum):
    AVAILABLE = 0
    FAIL = 1
    SKIP = 2


def required() -> bool:
    """Whether a missing service must fail the run (``ZART_REQUIRE_SERVICES`` set, not 0)."""
    return os.environ.get(REQUIRE, "") not in ("", "0")


def postgres_address() -> tuple[str, int]:
    return os.environ.get("PGHOST", "127.0.0.1"), int(os.environ.get("PGPORT", "5432"))


def postgres_bindir() -> str | None:
    """The directory of the newest PostgreSQL server binaries (initdb, pg_ctl), if installed."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def redis_address() -> tuple[str, int]:
    return "127.0.0.1", int(os.environ.get("ZART_REDIS_PORT", "6379"))


def chromium_path() -> str:
    return os.environ.get("ZART_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (it was free a moment ago): to serve on,
    or to point a client at a service that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _index_unreachable() -> str | None:
    """Why pip cannot download the build backend (setuptools) from its index, or None if it can."""
    with tempfile.TemporaryDirectory() as dest:
        command = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--dest", dest]
        try:
            done = subprocess.run(
                [*command, "setuptools>=77"], capture_output=True, text=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            return "pip could not download setuptools from the package index within 60 s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no error output"])[-1]
        return f"pip could not download setuptools from the package index: {last}"
    return None


def _answers(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=2):
            return True
    except OSError:
        return False


def missing(service: str) -> str | None:
    """Why ``service`` cannot be used here, or None if it can."""
    if service == "postgres":
        host, port = postgres_address()
        if not _answers((host, port)):
            return f"no PostgreSQL server answers at {host}:{port} (user postgres)"
    elif service == "postgres-binaries":
        if postgres_bindir() is None:
            return "no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin"
    elif service == "redis":
        host, port = redis_address()
        if not _answers((host, port)):
            return f"no Redis answers at {host}:{port}"
    elif service == "chromium":
        path = chromium_path()
        if not os.access(path, os.X_OK):
            return f"no Chromium at {path}: install it with `apt-get install chromium`"
        if importlib.util.find_spec("playwright") is None:
            return "playwright is not installed: pip install -e '.[dev]'"
    elif service == "package-index":
        return _index_unreachable()
    else:
        raise ValueError(f"unknown service {service!r}; known: {', '.join(SERVICES)}")
    return None


def verdict(service: str) -> tuple[Verdict, str]:
    """Available, skip or fail; with why it is missing (empty when available)."""
    reason = missing(service)
    if reason is None:
        return Verdict.AVAILABLE, ""
    return (Verdict.FAIL if required() else Verdict.SKIP), reason


def require(service: str) -> None:
    """In a test: return if ``service`` is available, else skip the test, or fail it if required.
    pytest is imported here, not with the module: ``tests.settings`` imports this module, and so
    does every process a test starts on them (0.15 s a start)."""
    import pytest

    outcome, reason = verdict(service)
    if outcome is Verdict.FAIL:
        pytest.fail(f"{service} is required ({REQUIRE}=1) but missing: {reason}", pytrace=False)
    if outcome is Verdict.SKIP:
        pytest.skip(f"{service} is missing: {reason}")


def main(names: list[str]) -> int:
    """Print the verdict on each service; return the exit status of the worst (fail, then skip)."""
    outcomes = set()
    for name in names:
        outcome, reason = verdict(name)
        outcomes.add(outcome)
        if outcome is Verdict.AVAILABLE:
            print(f"{name}: available")
        elif outcome is Verdict.SKIP:
            print(f"SKIPPED: what needs {name} ({REQUIRE}=1 would fail instead): {reason}")
        else:
            print(f"FAILED: {name} is required ({REQUIRE}=1) but missing: {reason}")
    worst = next((v for v in (Verdict.FAIL, Verdict.SKIP) if v in outcomes), Verdict.AVAILABLE)
    return worst.value


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

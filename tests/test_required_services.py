"""CI cannot pass by skipping: with ZART_REQUIRE_SERVICES=1 (set by .ci/run) a missing PostgreSQL,
Redis, Chromium or package index fails ``make test`` and the tests that need it; without the flag they skip, with
a message. A service is made missing by pointing its address at a port nothing listens on, or
Chromium's at a path with no browser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.passes import sqlite_pass_only
from tests.services import REQUIRE, free_port

pytestmark = [
    pytest.mark.timeout(180),
    sqlite_pass_only(
        "make test's handling of services is the same whichever database the pass uses"
    ),
]


def run(command: list[str], required: bool, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if key != REQUIRE}
    environment.update(env)
    if required:
        environment[REQUIRE] = "1"
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=150
    )


def make_test(required: bool, **env: str) -> subprocess.CompletedProcess[str]:
    """The real ``make test`` on this venv, its pytest runs narrowed to one small file (lint,
    the Chromium install and the venv's install are not remade)."""
    venv = Path(sys.prefix)
    stamp = venv / ".installed-stamp"
    return run(
        ["make", "-o", "lint", "-o", "chromium", "-o", str(stamp), "test", f"VENV={venv}",
         "PYTEST_ARGS=tests/test_checks.py -q -p no:cacheprovider"],
        required,
        **env,
    )  # fmt: skip


def test_make_test_fails_without_postgresql_when_services_are_required():
    port = str(free_port())
    result = make_test(required=True, PGPORT=port)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert (
        f"FAILED: postgres is required ({REQUIRE}=1) but missing:"
        f" no PostgreSQL server answers at 127.0.0.1:{port}"
    ) in output
    assert "passed" not in output, "tests ran although a required service was missing"


def test_make_test_skips_the_postgresql_run_on_a_laptop():
    port = str(free_port())
    result = make_test(required=False, PGPORT=port)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"SKIPPED: what needs postgres ({REQUIRE}=1 would fail instead)" in output
    assert output.count(" passed") == 1, "the SQLite run, and no PostgreSQL run"


MISSING = {
    "redis": ("tests/test_django_q.py", lambda: {"ZART_REDIS_PORT": str(free_port())}),
    "chromium": ("tests/test_browser.py", lambda: {"ZART_CHROMIUM": "/nonexistent/chromium"}),
}


@pytest.mark.parametrize("service", sorted(MISSING))
def test_a_test_that_needs_a_missing_service_fails_when_required_and_skips_otherwise(service):
    path, env = MISSING[service]
    command = [sys.executable, "-m", "pytest", path, "-q", "-p", "no:cacheprovider"]
    missing = env()

    required = run(command, required=True, **missing)
    assert required.returncode == 1, required.stdout
    assert f"{service} is required ({REQUIRE}=1) but missing" in required.stdout
    assert " passed" not in required.stdout and " skipped" not in required.stdout

    laptop = run(command, required=False, **missing)
    assert laptop.returncode == 0, laptop.stdout
    assert f"{service} is missing" in laptop.stdout
    assert " skipped" in laptop.stdout and " failed" not in laptop.stdout


def test_an_unreachable_package_index_is_skipped_on_a_laptop_and_fails_in_ci():
    unreachable = {
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_FIND_LINKS": "",
        "PIP_EXTRA_INDEX_URL": "",
        "PIP_RETRIES": "0",
    }
    command = [sys.executable, "-m", "tests.services", "package-index"]
    laptop = run(command, required=False, **unreachable)
    assert laptop.returncode == 2, laptop.stdout + laptop.stderr
    assert "SKIPPED: what needs package-index" in laptop.stdout
    ci = run(command, required=True, **unreachable)
    assert ci.returncode == 1, ci.stdout + ci.stderr
    assert f"FAILED: package-index is required ({REQUIRE}=1) but missing" in ci.stdout

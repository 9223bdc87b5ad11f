from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tests import services
from tests.approval_helpers import make_user
from tests.workflows import Job
from zart_django import DurableScheduler, notify_sockets
from zart_django.testing import reset_time

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(service): the test needs a service named in tests/services.py; without it it is"
        " skipped, or fails under ZART_REQUIRE_SERVICES=1 (tests/services.py decides)",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers("needs"):
        for service in marker.args:
            services.require(service)


@pytest.fixture(autouse=True)
def _real_time() -> Iterator[None]:
    yield
    reset_time()


@pytest.fixture
def scheduler() -> DurableScheduler:
    return DurableScheduler()


@pytest.fixture
def manager():
    """A user who may decide approvals."""
    return make_user("alice", "zart_approvals.decide_approval", full_name="Alice Manager")


@pytest.fixture
def clerk():
    """A user with no permission at all."""
    return make_user("clerk")


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(log=str(tmp_path / "steps.log"))


def subprocess_env() -> dict[str, str]:
    """This process's environment for a process of the project on the test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "ZART_DB_NAME": str(connection.settings_dict["NAME"]),
        "PYTHONUNBUFFERED": "1",
    }


class WorkerProcess:
    """A real ``manage.py run_zart_worker`` process on the test database, started with
    ``--skip-checks``: the system checks are ``test_checks.py``'s business, and the URL checks
    import the URLconf and all it imports (Django REST framework, and through it psycopg),
    which doubled a worker's start (0.9 of 1.9 s here) in every test that starts one."""

    def __init__(self, log: Path, *args: str) -> None:
        env = subprocess_env()
        self.log_path = log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "run_zart_worker", "--skip-checks", *args],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: the worker gets no chance to clean up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        self._log.close()
        return code

    def stop(self) -> None:
        """SIGSTOP; return once every thread has stopped (kill() returns before the threads of a
        busy process stop, and meanwhile they run on)."""
        self.proc.send_signal(signal.SIGSTOP)
        wait_until(lambda: _stopped(self.proc.pid), timeout=10, what="the worker to stop")

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def output(self) -> str:
        return self.log_path.read_text()

    def claims(self) -> int:
        """How many executions this worker claimed (it logs each claim)."""
        return self.output().count(": claimed by ")


def _stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped (Linux: /proc/<pid>/task/*/stat)."""
    states = [
        (task / "stat").read_text().rpartition(")")[2].split()[0]
        for task in Path(f"/proc/{pid}/task").iterdir()
    ]
    return all(state == "T" for state in states)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    workers: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"worker-{len(workers)}.log", *args)
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        if worker.proc.poll() is None:
            worker.kill()


def wait_until(condition: Callable[[], object], timeout: float = 30, what: str = "") -> None:
    """Poll ``condition`` until it is true; fail the test after ``timeout`` seconds."""
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out after {timeout}s waiting for {what or condition}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the wake-up sockets' folder beside this run's SQLite test database, which Django
    deletes but not what the workers made beside it (``<database file>-wakeups``)."""
    name = settings.DATABASES["default"].get("TEST", {}).get("NAME")
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and name:
        shutil.rmtree(f"{name}{notify_sockets.FOLDER_SUFFIX}", ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> str:
    return f"zart-django database: {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}"


FAULT_FIGURES: list[dict[str, object]] = []
"""What each scenario of tests/test_faults.py survived, for the terminal summary."""


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FAULT_FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section("faults survived (tests/test_faults.py)")
    columns = ("executions", "cuts", "recoveries", "max stall s")
    write(f"{'scenario':<56}" + "".join(f"{c:>12}" for c in columns))
    for row in FAULT_FIGURES:
        figures = "".join(f"{row[c]:>12}" for c in columns[:3]) + f"{row[columns[3]]:>12.2f}"
        write(f"{row['scenario']:<56}{figures}")

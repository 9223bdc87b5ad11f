"""Real worker processes: ``run_zart_worker`` (through ``bench.worker``) on the benchmark database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from django.conf import settings

from bench.worker import CLAIM_MARK

_READY = "started"  # the worker logs "worker <name>: started (...)" once it is about to poll


class WorkerPool:
    """``processes`` worker processes, started on enter (once each logged its start), stopped on exit.

    They inherit this process's environment, so ``bench.settings`` and the database it selects;
    ``options`` are passed to each (``--concurrency 32``); their logs go to
    ``var/bench-worker-<n>.log``.
    """

    def __init__(self, processes: int, options: Sequence[str] = ()) -> None:
        self.processes = processes
        self.options = list(options)
        self.logs = [
            Path(settings.BASE_DIR) / "var" / f"bench-worker-{n}.log" for n in range(processes)
        ]
        self._procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs]

    def claims(self) -> list[int]:
        """How many times each worker has called ``claim_due`` so far (from its log)."""
        return [log.read_text(errors="replace").count(CLAIM_MARK) for log in self.logs]

    def __enter__(self) -> WorkerPool:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings", "PYTHONUNBUFFERED": "1"}
        for log in self.logs:
            log.parent.mkdir(exist_ok=True)
            with open(log, "wb") as out:
                self._procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.worker", *self.options],
                        cwd=settings.BASE_DIR,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                    )
                )
        limit = time.monotonic() + 60
        while not all(_READY in log.read_text(errors="replace") for log in self.logs):
            if any(proc.poll() is not None for proc in self._procs) or time.monotonic() > limit:
                self._stop()
                raise RuntimeError(f"a worker did not start; see {', '.join(map(str, self.logs))}")
            time.sleep(0.05)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self._procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

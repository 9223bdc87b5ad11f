"""A real ``run_zart_worker`` process for the demo commands, stopped with SIGTERM at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.management import CommandError

STOP_TIMEOUT = 30.0
"""Seconds the worker has to finish after SIGTERM before it is killed."""


@contextlib.contextmanager
def running_worker(log_name: str) -> Iterator[Path]:
    """Run a worker, its output in ``var/<log_name>``, while the block runs; yield the log's
    path (relative to the project). A worker still running ``STOP_TIMEOUT`` seconds after its
    SIGTERM is killed, and the demo fails saying so, instead of leaving it behind."""
    log_path = Path(settings.BASE_DIR) / "var" / log_name
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "run_zart_worker"],
            cwd=settings.BASE_DIR,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ.copy(),
        )
        try:
            yield log_path.relative_to(settings.BASE_DIR)
        except BaseException:
            _stop(worker)  # the demo's own error is the one to show
            raise
        if not _stop(worker):
            raise CommandError(
                f"the demo's worker (pid {worker.pid}) did not stop within {STOP_TIMEOUT:g} s of"
                f" SIGTERM and was killed; its log: {log_path}"
            )


def _stop(worker: subprocess.Popen[bytes]) -> bool:
    """SIGTERM ``worker`` and wait for it; kill it if it is still running ``STOP_TIMEOUT``
    seconds later. Whether it stopped by itself."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()
        return False
    return True

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


@contextlib.contextmanager
def running_worker(log_name: str) -> Iterator[Path]:
    """Run a worker, its output in ``var/<log_name>``, while the block runs; yield the log's
    path (relative to the project)."""
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
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)

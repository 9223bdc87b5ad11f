"""The demos' background worker: a real ``run_zart_worker`` process beside the command."""

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
def background_worker(log_name: str) -> Iterator[Path]:
    """Run a worker while the block runs, its output in ``var/<log_name>`` (the path yielded,
    relative to the project); SIGTERM on the way out lets it finish what it has in flight."""
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

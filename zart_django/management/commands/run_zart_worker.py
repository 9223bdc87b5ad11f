"""``manage.py run_zart_worker``: run durable executions until SIGTERM or SIGINT."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from zart_django.logs import ensure_output
from zart_django.management.cli import at_least_one, seconds
from zart_django.worker import Worker


class Command(BaseCommand):
    help = "Run a zart worker: claim due durable executions and run them until stopped."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency", type=at_least_one, help="executions run at once (threads, >= 1)"
        )
        parser.add_argument(
            "--batch-size", type=at_least_one, help="executions claimed per query (>= 1)"
        )
        parser.add_argument(
            "--poll-interval", type=seconds, help="seconds between polls when idle (> 0)"
        )
        parser.add_argument(
            "--once", action="store_true", help="exit once no execution is due, instead of waiting"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        _log_to_stderr()
        worker = Worker(
            concurrency=options["concurrency"],
            batch_size=options["batch_size"],
            poll_interval=options["poll_interval"],
        )

        def stop(signum: int, frame: object) -> None:
            logging.getLogger("zart_django").info(
                "worker %s: %s received, finishing work in flight",
                worker.name,
                signal.Signals(signum).name,
            )
            worker.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        worker.run(once=options["once"])


def _log_to_stderr() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    ensure_output([handler])

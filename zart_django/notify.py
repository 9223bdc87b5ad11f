"""Push wake-ups on PostgreSQL: writes that make work due ``NOTIFY``, idle workers ``LISTEN``.

``pg_notify`` is transactional, so a notification is sent only when the write that made the work
due commits. Notifications can be lost (a listener reconnecting misses what was sent meanwhile),
so workers keep polling as the fallback and always read due work from the table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from . import backends

logger = logging.getLogger("zart_django")

CHANNEL = "zart_due"
_RECONNECT_DELAY = 1.0
_MAX_RECONNECT_DELAY = 10.0


def notify() -> None:
    """The PostgreSQL waker: listening workers wake up when the current transaction commits."""
    backends.current().notify(CHANNEL)


class Listener:
    """A thread that calls ``on_wake`` for every notification, until ``stop``.

    It holds its own session-level connection to ``ZART["DATABASE"]`` (Django's are per thread
    and used for queries; a transaction-pooled one would not keep a LISTEN); when that
    connection is lost it reconnects at once (then with a growing delay while the database stays
    away) and calls ``on_wake`` once, in case something was missed meanwhile.
    """

    def __init__(self, on_wake: Callable[[], None]) -> None:
        self._on_wake = on_wake
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zart-listener", daemon=True)

    @staticmethod
    def available() -> bool:
        """Whether the engine's database sends notifications (PostgreSQL)."""
        return backends.current().listens

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg  # only PostgreSQL projects listen, and only they need psycopg

        params = backends.current().connection.get_connection_params()
        failures = 0
        while not self._stopped.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    self._on_wake()
                    while not self._stopped.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._on_wake()
            except psycopg.Error as exc:
                delay = min(_RECONNECT_DELAY * failures, _MAX_RECONNECT_DELAY)
                failures += 1
                logger.warning("listener: %s; reconnecting in %.1fs, polling meanwhile", exc, delay)
                self._stopped.wait(delay)

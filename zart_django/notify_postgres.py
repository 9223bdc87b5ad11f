"""Push wake-ups on PostgreSQL: ``NOTIFY`` that one idle worker wins.

A write that makes ``n`` executions due sends, in its transaction, one ``NOTIFY zart_due`` whose
payload names ``n`` fresh keys (a random base and a count); ``pg_notify`` is transactional, so it
is heard only if the write commits. Every worker ``LISTEN`` s on a connection of its own; a
worker that can take work answers a notification with one statement that takes the first free
key as a session advisory lock (``pg_try_advisory_lock``, which does not wait). Each key is
won by one worker, and a worker wins at most one key per notification, so ``n`` due executions
wake ``n`` idle workers (fewer if fewer are idle), and the others go back to sleep without
claiming. A busy worker does not compete, so it cannot swallow the wake-up an idle one needed.
Won keys are let go after ``HOLD`` seconds; a worker that dies lets go of its keys with its
connection, so it takes no wake-up with it.

Notifications can be lost (a listener reconnecting misses what was sent meanwhile), so workers
keep polling as the fallback and always read due work from the table.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backends.postgresql import PostgreSQLBackend

logger = logging.getLogger("zart_django")

CHANNEL = "zart_due"
LOCK_SPACE = 0x7A617274
"""The first key of the two-key advisory locks that stand for wake-ups (``zart`` in ASCII)."""
MAX_KEYS = 64
"""The most workers one notification wakes (a worker claims a batch, and loops while full)."""
HOLD = 10.0
"""Seconds a worker keeps a won key, so that a slower worker cannot win it again meanwhile."""
_RECONNECT_DELAY = 1.0
_MAX_RECONNECT_DELAY = 10.0
_WAIT = 0.5  # seconds a listener waits for a notification before it looks whether to stop
_WIN = (
    "SELECT k FROM generate_series(%s::int, %s::int) AS k WHERE pg_try_advisory_lock(%s, k) LIMIT 1"
)
_LET_GO = "SELECT pg_advisory_unlock(%s, k) FROM unnest(%s::int[]) AS k"


def payload(count: int) -> str:
    """A notification's payload: a random base key and how many keys follow it."""
    return f"{secrets.randbits(30)}:{max(1, min(count, MAX_KEYS))}"


def keys(text: str) -> tuple[int, int] | None:
    """The first and last key a payload names; None for one not ours (a bare ``NOTIFY``)."""
    base, _, count = text.partition(":")
    if not (base.isdigit() and count.isdigit()):
        return None
    return int(base), int(base) + int(count) - 1


class NotifyChannel:
    """The wake-up channel of one PostgreSQL connection alias."""

    def __init__(self, backend: PostgreSQLBackend) -> None:
        self.backend = backend

    def send(self, count: int) -> None:
        """Wake up to ``count`` idle workers when the current transaction commits."""
        self.backend.notify(*self.message(count))

    def message(self, count: int) -> tuple[str, str]:
        """The channel and payload of ``send``'s ``NOTIFY``, for a statement that sends it."""
        return CHANNEL, payload(count)

    def receiver(self, name: str) -> NotifyReceiver:
        return NotifyReceiver(self.backend, name)


class NotifyReceiver:
    """A worker's ``LISTEN`` connection: competes for wake-ups while ``ready``."""

    def __init__(self, backend: PostgreSQLBackend, worker: str) -> None:
        self.backend = backend
        self.worker = worker
        self._ready = False
        self._held: list[tuple[float, int]] = []  # (monotonic time won, key)

    def open(self) -> bool:
        return True

    def ready(self, ready: bool) -> None:
        """Whether this worker can take work now: only then does it compete for wake-ups."""
        self._ready = ready

    def close(self) -> None:
        """Nothing to do: ``run`` closes its connection (and so lets go of its keys) on stop."""

    def run(self, on_wake: Callable[[], None], stopped: threading.Event) -> None:
        """Listen until ``stopped``, on a session-level connection of its own (Django's are per
        thread and used for queries; a transaction-pooled one would not keep a LISTEN). When that
        connection is lost it reconnects at once (then with a growing delay while the database
        stays away) and calls ``on_wake`` once, in case something was missed meanwhile."""
        import psycopg  # only PostgreSQL projects listen, and only they need psycopg

        params = self.backend.connection.get_connection_params()
        failures = 0
        while not stopped.is_set():
            try:
                with psycopg.connect(**params, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    logger.debug("worker %s: listening on %s", self.worker, CHANNEL)
                    failures = 0
                    self._held.clear()
                    on_wake()
                    self._listen(conn, on_wake, stopped)
            except psycopg.Error as exc:
                delay = min(_RECONNECT_DELAY * failures, _MAX_RECONNECT_DELAY)
                failures += 1
                logger.warning("listener: %s; reconnecting in %.1fs, polling meanwhile", exc, delay)
                stopped.wait(delay)

    def _listen(self, conn: Any, on_wake: Callable[[], None], stopped: threading.Event) -> None:
        while not stopped.is_set():
            heard = [n.payload for n in conn.notifies(timeout=_WAIT, stop_after=1)]
            for text in heard:
                if self._ready and self._win(conn, text):
                    logger.debug("worker %s: woken by a notification", self.worker)
                    on_wake()
            self._let_go(conn)

    def _win(self, conn: Any, text: str) -> bool:
        """Take the first free key of the notification ``text``: whether this worker won one."""
        span = keys(text)
        if span is None:
            return True  # someone else's NOTIFY on our channel: wake, as any worker would
        row = conn.execute(_WIN, [*span, LOCK_SPACE]).fetchone()
        if row is None:
            return False
        self._held.append((time.monotonic(), row[0]))
        return True

    def _let_go(self, conn: Any) -> None:
        """Unlock the keys held longer than ``HOLD``."""
        limit = time.monotonic() - HOLD
        old = [key for won, key in self._held if won < limit]
        if old:
            conn.execute(_LET_GO, [LOCK_SPACE, old])
            self._held = self._held[len(old) :]

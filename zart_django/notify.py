"""Push wake-ups: a write that makes work due wakes one idle worker per due execution.

One interface for both vendors: ``notify`` is the waker the app registers (see ``wakeups``), and
``Listener`` is what a worker runs to be woken. The database's backend gives the channel:
PostgreSQL's ``NOTIFY`` (``notify_postgres``), SQLite's UNIX datagram sockets in a folder beside
the database file (``notify_sockets``), or none (an in-memory SQLite database, Windows): workers
then poll. A wake-up is sent only if the write commits. Wake-ups can be lost (a listener
reconnecting, a worker killed after it was picked), so workers keep polling as the fallback and
always read due work from the table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from . import backends

logger = logging.getLogger("zart_django")


class Receiver(Protocol):
    """A worker's end of a wake-up channel."""

    def open(self) -> bool:
        """Get ready to receive; False if wake-ups cannot reach this worker (it polls)."""

    def ready(self, ready: bool) -> None:
        """Whether the worker can take work now: wake-ups go only to workers that can."""

    def run(self, on_wake: Callable[[], None], stopped: threading.Event) -> None:
        """Call ``on_wake`` for each wake-up meant for this worker, until ``stopped``."""

    def close(self) -> None:
        """Let go of what ``open`` took."""


class Channel(Protocol):
    """How the writers of one database wake its idle workers."""

    def send(self, count: int) -> None:
        """Wake up to ``count`` idle workers when the current transaction commits."""

    def receiver(self, name: str) -> Receiver:
        """The end that the worker called ``name`` listens on."""


def notify(count: int = 1) -> None:
    """The push waker: wake one idle worker for each of ``count`` executions the current
    transaction makes due, when it commits."""
    channel = backends.current().wake_channel()
    if channel is not None:
        channel.send(count)


class Listener:
    """A thread that calls ``on_wake`` for each wake-up meant for this worker, until ``stop``.

    The worker says with ``ready`` whether it can take work: wake-ups go to workers that can.
    """

    def __init__(self, on_wake: Callable[[], None], name: str) -> None:
        channel = backends.current().wake_channel()
        if channel is None:
            raise RuntimeError("this database has no wake-ups (see Listener.available)")
        self._on_wake = on_wake
        self._name = name
        self._ready = False
        self._receiver = channel.receiver(name)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="zart-listener", daemon=True)

    @staticmethod
    def available() -> bool:
        """Whether the engine's database can wake workers (PostgreSQL; SQLite in a file, not
        on Windows)."""
        return backends.current().wake_channel() is not None

    def start(self) -> None:
        if self._receiver.open():
            self._thread.start()

    def ready(self, ready: bool) -> None:
        """Whether the worker can take work now."""
        if ready == self._ready:
            return
        self._ready = ready
        self._receiver.ready(ready)
        state = "ready for wake-ups" if ready else "full, wake-ups go to others"
        logger.debug("worker %s: %s", self._name, state)

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._receiver.close()

    def _run(self) -> None:
        self._receiver.run(self._on_wake, self._stopped)

"""The worker: claims due executions in batches, runs them on a thread pool (those of ``async
def`` tasks on an event loop), keeps their leases.

A worker holds no execution while it waits for an event: waits park in the database. A worker
that dies loses its executions only until their leases expire; another worker then replays them.
Each thread checks its database connection before each unit of work (a claim, a run, a
heartbeat) and replaces one the server closed, so a database restart costs a reconnect, not a
lease.

Each pass of the loop also ticks the schedules of the worker's recurring tasks (synced into
the database when the worker starts; see ``zart_django.schedules``), before it claims, so an
occurrence it starts is claimed in the same pass.

With ``ZART["RETENTION"]`` set, a worker also deletes executions finished longer ago than that,
one bounded batch at a time between claims (see ``_purge_now_and_then``).
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime

from django.db import DatabaseError, InterfaceError

from . import aio, clock, conf, metrics, schedules, store
from .models import FINISHED_STATUSES
from .notify import Listener
from .registry import TaskRegistry, default_registry
from .replay import arun_execution, run_execution
from .scheduler import PURGE_BATCH

logger = logging.getLogger("zart_django")

_DB_ERRORS = (DatabaseError, InterfaceError)
_MAX_BACKOFF = 10.0
PURGE_EVERY = 60.0
"""Seconds between a process's retention batches, once a batch found fewer than it could take."""
_next_purge = 0.0  # monotonic time of this process's next retention batch, for every Worker in it
_next_seen = 0.0  # monotonic time of this process's next store.worker_seen

_started: list[datetime] = []
_started_lock = threading.Lock()


class SignalSafeEvent:
    """A ``threading.Event`` for one waiting thread that a signal handler may set.

    ``Event.set`` takes the lock that ``Event.wait`` holds around its wait: a SIGTERM handler
    that interrupts the main thread there and stops the worker waits for that lock forever,
    and so does the worker (a deploy's SIGTERM hung one that way until it was killed).
    ``queue.SimpleQueue.put`` is reentrant, safe in a signal handler: ``set`` puts, ``wait``
    gets, ``clear`` empties the queue."""

    def __init__(self) -> None:
        self._flag = False
        self._queue: queue.SimpleQueue[None] = queue.SimpleQueue()

    def set(self) -> None:
        self._flag = True
        self._queue.put(None)

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        self._flag = False
        while not self._queue.empty():
            self._queue.get_nowait()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``set``, at once if it was set since ``clear``;
        return whether the event is set."""
        if not self._flag:
            try:
                self._queue.get(timeout=timeout)
            except queue.Empty:
                pass
        return self._flag


def process_started_at() -> datetime:
    """When this process's first worker started, on the database's clock (with django-q2 each
    ``run_due`` is a new worker in a long-lived process: the process's start is what counts)."""
    with _started_lock:
        if not _started:
            _started.append(store.database_now())
        return _started[0]


class Worker:
    """Runs due executions of the tasks in ``registry`` until stopped.

    Settings not given come from ``ZART``: concurrency (threads), batch size, poll interval, lease.
    """

    def __init__(
        self,
        registry: TaskRegistry | None = None,
        *,
        concurrency: int | None = None,
        batch_size: int | None = None,
        poll_interval: float | None = None,
        lease: float | None = None,
    ) -> None:
        self.registry = registry or default_registry
        self.concurrency = concurrency or int(conf.get("CONCURRENCY"))
        self.batch_size = batch_size or int(conf.get("BATCH_SIZE"))
        self.poll_interval = poll_interval or float(conf.get("POLL_INTERVAL"))
        self.lease = lease or float(conf.get("LEASE"))
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = SignalSafeEvent()  # set by ``stop``, which a signal handler calls
        self._wake = SignalSafeEvent()
        self._drained = threading.Event()
        self._lock = threading.Lock()
        self._inflight: dict[Future[None], store.Claim] = {}
        self._blocked_retried = False
        self._renewed_at = time.monotonic()
        """When the last renewal of the leases in flight began (monotonic; see ``_late_claims``)."""
        self._schedules_synced = False
        self._event_loop: aio.EventLoop | None = None

    def stop(self) -> None:
        """Stop claiming; ``run`` returns once the executions in flight have finished or parked.
        Safe to call from a signal handler (see ``SignalSafeEvent``)."""
        self._stopping.set()
        self._wake.set()

    def run(self, once: bool = False) -> None:
        """Claim and run executions until ``stop`` (or, with ``once``, until none is due: a
        django-q2 task, which logs its start and stop at DEBUG only)."""
        level = logging.DEBUG if once else logging.INFO
        logger.log(
            level,
            "worker %s: started (concurrency %d, batch %d, poll %.2fs, lease %.0fs)",
            self.name,
            self.concurrency,
            self.batch_size,
            self.poll_interval,
            self.lease,
        )
        heartbeat = threading.Thread(target=self._heartbeat, name="zart-heartbeat", daemon=True)
        heartbeat.start()
        listener = (
            Listener(self._wake.set, self.name) if Listener.available() and not once else None
        )
        if listener is not None:
            listener.start()
        try:
            with ThreadPoolExecutor(self.concurrency, thread_name_prefix="zart-worker") as pool:
                self._loop(pool, once, listener)
        finally:
            self._close_event_loop()  # its thread would keep the process alive
        if listener is not None:
            listener.stop()
        self._drained.set()
        heartbeat.join()
        logger.log(level, "worker %s: stopped", self.name)

    def _loop(self, pool: ThreadPoolExecutor, once: bool, listener: Listener | None) -> None:
        """Claim while there is room; the listener hears whether there is, before each claim, so
        work made due after the claim read the table wakes this worker, and none goes to it
        while it is full."""
        failures = 0
        unanswered: list[str] = []  # tokens of claims that failed: they may have taken work
        while not self._stopping.is_set():
            self._wake.clear()
            self._say_seen_now_and_then()
            self._purge_now_and_then()
            self._tick_schedules()
            wanted = min(self.concurrency - len(self._inflight), self.batch_size)
            if listener is not None:
                listener.ready(wanted > 0)
            if wanted > 0:
                self._check_connection("the claim loop")
                token = store.new_token()
                renewing = time.monotonic()
                try:
                    if not self._blocked_retried:
                        self._retry_blocked()
                    if unanswered:
                        store.release(unanswered)
                        unanswered.clear()
                    late = self._late_claims()
                    claims = store.claim_due(
                        self.name,
                        wanted,
                        self.lease,
                        token,
                        tasks=self.registry.names(),
                        renew=late,
                    )
                    failures = 0
                    if late:
                        self._renewed(renewing)
                except _DB_ERRORS as exc:
                    unanswered.append(token)
                    failures += 1
                    self._database_down(exc, failures)
                    continue
                for claim in claims:
                    self._submit(pool, claim)
                if len(claims) == wanted:
                    if listener is not None:
                        listener.ready(self.concurrency > len(self._inflight))
                    continue  # a full batch: more may be due
                if once and not self._inflight:
                    return
            store.release_pooled_connection()
            self._wake.wait(self.poll_interval)

    def _say_seen_now_and_then(self) -> None:
        """Record, at most once per ``store.SEEN_EVERY`` seconds a process, that a worker on this
        host looks for work (the inbox tells people whether one runs); errors are logged."""
        global _next_seen
        if time.monotonic() < _next_seen:
            return
        _next_seen = time.monotonic() + store.SEEN_EVERY
        try:
            store.worker_seen(socket.gethostname())
        except _DB_ERRORS as exc:
            logger.warning(
                "worker %s: could not record it runs: %s", self.name, store.first_line(exc)
            )

    def _purge_now_and_then(self) -> None:
        """With ``ZART["RETENTION"]``, delete one batch of executions finished longer ago: at
        most once a ``PURGE_EVERY`` per process (``run_due`` makes a Worker per django-q2 task),
        at once again while full batches show a backlog. A batch is one short transaction of
        ``store.purge_finished``; a database error is logged and tried again later."""
        global _next_purge
        period = conf.retention()
        if period is None or time.monotonic() < _next_purge:
            return
        _next_purge = time.monotonic() + PURGE_EVERY
        try:
            deleted = store.purge_finished(
                clock.now() - period, FINISHED_STATUSES, PURGE_BATCH, max_batches=1
            )
        except _DB_ERRORS as exc:
            logger.warning(
                "worker %s: retention purge failed: %s", self.name, store.first_line(exc)
            )
            store.close_connection()
            return
        count = deleted.get("executions", 0)
        if count:
            logger.info(
                "worker %s: retention deleted %d executions finished over %s ago",
                self.name,
                count,
                period,
            )
        if count >= PURGE_BATCH:
            _next_purge = 0.0

    def _tick_schedules(self) -> None:
        """Start the due occurrences of this worker's schedules (syncing them from the code
        first, once); a database error is logged and the next pass tries again."""
        try:
            if not self._schedules_synced:
                schedules.sync(self.registry)
                self._schedules_synced = True
            schedules.tick(self.registry)
        except _DB_ERRORS as exc:
            logger.warning(
                "worker %s: could not tick schedules: %s", self.name, store.first_line(exc)
            )
            store.close_connection()

    def _retry_blocked(self) -> None:
        """Make due, once, the executions of this worker's tasks that a history mismatch blocked
        before this process started: it may run the fixed code a deploy brought."""
        ids = store.retry_blocked(self.registry.names(), process_started_at())
        self._blocked_retried = True
        for execution_id in ids:
            logger.warning(
                "execution %s: blocked before worker %s started; retrying it once on this code",
                execution_id,
                self.name,
            )

    def _submit(self, pool: ThreadPoolExecutor, claim: store.Claim) -> None:
        logger.info("execution %s: claimed by %s", claim.execution_id, self.name)
        metrics.claimed()
        future: Future[None]
        if self._is_async(claim):
            future = self._async_loop().submit(self._arun(claim))
        else:
            future = pool.submit(self._run, claim)
        with self._lock:
            self._inflight[future] = claim
        future.add_done_callback(self._done)

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._inflight.pop(future, None)
        self._wake.set()

    def _run(self, claim: store.Claim) -> None:
        self._check_connection(f"execution {claim.execution_id}")
        try:
            run_execution(claim, self.registry)  # hands the execution back on a database error
        except Exception:
            logger.exception("execution %s: unexpected engine error", claim.execution_id)
            store.close_connection()
        finally:
            store.release_pooled_connection()

    def _is_async(self, claim: store.Claim) -> bool:
        return claim.task_name in self.registry and self.registry.get(claim.task_name).is_async

    def _async_loop(self) -> aio.EventLoop:
        """The event loop async executions run on, started with the first one: each is a task
        there, counted in ``concurrency`` like a thread's, and holds no thread while it awaits
        (its database calls run on ``concurrency`` engine threads of its own)."""
        if self._event_loop is None:
            self._event_loop = aio.EventLoop(self.concurrency)
        return self._event_loop

    async def _arun(self, claim: store.Claim) -> None:
        try:
            await arun_execution(claim, self.registry)  # hands it back on a database error
        except Exception:
            logger.exception("execution %s: unexpected engine error", claim.execution_id)

    def _close_event_loop(self) -> None:
        """Wait for the async executions in flight, then stop the event loop and its threads."""
        if self._event_loop is None:
            return
        with self._lock:
            inflight = list(self._inflight)
        wait(inflight)
        self._event_loop.close()
        self._event_loop = None

    def _heartbeat(self) -> None:
        while not self._drained.wait(self.lease / 3):
            renewing = time.monotonic()
            with self._lock:
                claims = list(self._inflight.values())
            self._check_connection("the heartbeat")
            try:
                store.heartbeat(claims, self.lease)
                self._renewed(renewing)
                store.release_pooled_connection()
            except _DB_ERRORS as exc:
                logger.warning("worker %s: heartbeat failed: %s", self.name, store.first_line(exc))
                store.close_connection()
        store.close_connection()

    def _late_claims(self) -> list[store.Claim]:
        """The claims in flight if the heartbeat is late (their leases were last renewed half a
        lease ago or more), for the claim to renew in its own write; else none. On SQLite the
        heartbeat queues for the one write lock with every other writer and can wait longer
        than a lease while this worker's claims get the lock: without this, another worker, or
        this worker's own claim, would take back executions it is running."""
        if time.monotonic() - self._renewed_at < self.lease / 2:
            return []
        with self._lock:
            return list(self._inflight.values())

    def _renewed(self, began: float) -> None:
        """Note that a renewal of every lease in flight began at ``began`` and committed."""
        self._renewed_at = max(self._renewed_at, began)

    def _check_connection(self, who: str) -> None:
        """Replace this thread's database connection if the server closed it."""
        reason = store.drop_dead_connection()
        if reason:
            logger.warning(
                "worker %s: database unavailable to %s (%s); reconnecting",
                self.name,
                who,
                reason,
            )

    def _database_down(self, exc: Exception, failures: int) -> None:
        delay = min(self.poll_interval * 2 ** (failures - 1), _MAX_BACKOFF)
        logger.error(
            "worker %s: database unavailable (%s); retrying in %.1fs",
            self.name,
            store.first_line(exc),
            delay,
        )
        store.close_connection()
        self._stopping.wait(delay)

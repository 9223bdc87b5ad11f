"""The asyncio side of the engine: where ``async def`` durable functions run and where their
database calls go.

Django's ORM is synchronous and refuses to run in a thread with a running event loop, so an
async execution's engine calls (checkpoints, parking, the start and end of a run) are made on an
*engine thread*: ``engine_call`` hands a function to a worker's pool of database threads (or,
in ``run_here``, to the thread that waits for the loop) with the caller's context variables,
and awaits it. The event loop itself never touches the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connections

from . import store

T = TypeVar("T")

_executor: contextvars.ContextVar[concurrent.futures.Executor | None] = contextvars.ContextVar(
    "zart_engine_executor", default=None
)
_engine_side: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zart_engine_side", default=False
)


def on_engine_thread() -> bool:
    """Whether this code runs on an engine thread for an async execution (``engine_call``), where
    the engine's functions are called as they are, not awaited."""
    return _engine_side.get()


async def engine_call(fn: Callable[[], T]) -> T:
    """Run ``fn()`` on an engine thread with a copy of this context and return what it returns
    (or raise what it raises, ``Suspended`` and ``LeaseLost`` included): a thread of the
    worker's ``EventLoop``, or else Django's thread for synchronous code (``run_here``)."""
    context = contextvars.copy_context()
    executor = _executor.get()
    if executor is None:
        return await sync_to_async(context.run, thread_sensitive=True)(_as_engine, fn)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, context.run, _as_engine, fn)


def _as_engine(fn: Callable[[], T]) -> T:
    _engine_side.set(True)
    store.drop_dead_connection()  # costs no query unless an earlier call left an error
    try:
        return fn()
    finally:
        store.release_pooled_connection()  # the thread serves other executions meanwhile


async def _using(executor: concurrent.futures.Executor, work: Awaitable[T]) -> T:
    _executor.set(executor)
    return await work


class EventLoop:
    """An event loop on a thread of its own, for a worker's async executions, with the pool of
    ``threads`` engine threads their database calls run on."""

    def __init__(self, threads: int) -> None:
        self._started = 0
        self._counting = threading.Lock()
        self._engine = concurrent.futures.ThreadPoolExecutor(
            threads, thread_name_prefix="zart-async-db", initializer=self._thread_started
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="zart-async")
        self._thread.start()

    def submit(self, work: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``work`` as a task on the loop; its engine calls use this loop's engine threads."""
        return asyncio.run_coroutine_threadsafe(_using(self._engine, work), self._loop)

    def close(self) -> None:
        """Stop the loop (the caller has waited for the work it submitted) and its threads."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._close_connections()
        self._engine.shutdown(wait=True)

    def _thread_started(self) -> None:
        with self._counting:
            self._started += 1

    def _close_connections(self) -> None:
        """Close the database connection of each engine thread: one call per thread, each held
        at a barrier until all have run, so no thread takes two."""
        if not self._started:
            return
        barrier = threading.Barrier(self._started)

        def close() -> None:
            connections.close_all()
            barrier.wait()

        for _ in range(self._started):
            self._engine.submit(close)


def run_here(work: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``work(*args)`` (an ``async def`` function) to its end from synchronous code, as ``asgiref.sync.async_to_sync`` does:
    the event loop runs on a helper thread and the engine calls (and a step body's
    ``sync_to_async`` calls, the async ORM's included) run in this thread, so they see its
    database connection and, in a test, its transaction. For ``run_execution`` outside a worker
    and for ``zart_django.testing``."""
    return async_to_sync(work)(*args)

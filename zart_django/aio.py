"""The asyncio side of the engine: where ``async def`` durable functions run and where their
database calls go.

Django's ORM is synchronous and refuses to run in a thread with a running event loop, so an
async execution's engine calls (checkpoints, parking, the start and end of a run) are made on an
*engine thread*: ``engine_call`` hands a function to the executor of the running execution (a
worker's pool of database threads, or the thread that drives the loop in ``run_here``) with the
caller's context variables, and awaits it. The event loop itself never touches the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

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
    (or raise what it raises, ``Suspended`` and ``LeaseLost`` included)."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    return await loop.run_in_executor(_executor.get(), context.run, _as_engine, fn)


def _as_engine(fn: Callable[[], T]) -> T:
    _engine_side.set(True)
    store.drop_dead_connection()  # costs no query unless an earlier call left an error
    return fn()


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
        barrier = threading.Barrier(self._started)

        def close() -> None:
            connections.close_all()
            barrier.wait()

        for _ in range(self._started):
            self._engine.submit(close)


class _ThisThread(concurrent.futures.Executor):
    """An executor whose calls are run by the thread that calls ``serve``."""

    def __init__(self) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Any:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:  # Suspended, LeaseLost: the awaiting coroutine's
                future.set_exception(exc)

        self._calls.put(call)
        return future

    def serve(self) -> None:
        """Run the submitted calls until ``done``."""
        while (call := self._calls.get()) is not None:
            call()

    def done(self) -> None:
        self._calls.put(None)


def run_here(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``work()`` to its end from synchronous code: the event loop runs on a helper thread
    and the engine calls run in this thread, so they see its database connection (and, in a
    test, its transaction). For ``run_execution`` outside a worker and for ``testing``."""
    engine = _ThisThread()
    outcome: concurrent.futures.Future[T] = concurrent.futures.Future()

    def loop() -> None:
        try:
            outcome.set_result(asyncio.run(_using(engine, work())))
        except BaseException as exc:  # raised in the calling thread below
            outcome.set_exception(exc)
        finally:
            engine.done()

    thread = threading.Thread(target=loop, name="zart-async-here")
    thread.start()
    engine.serve()
    thread.join()
    return outcome.result()

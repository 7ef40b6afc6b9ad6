"""Threads around the event loop: callbacks moved onto it, blocking calls moved off it.

librdkafka calls rebalance and delivery callbacks from inside ``consume``/``poll``/
``flush``/``commit_transaction``, on the thread that made that call. The connectors make
some of those calls in a worker thread (a blocking wait for records, a transaction
commit), yet the service's callbacks touch state that belongs to the event loop. A
:class:`LoopBridge` moves such a call onto the loop thread: directly when already
there, otherwise through ``call_soon_threadsafe``, waiting for the result when the
caller needs it (a rebalance listener's offsets) and not otherwise (a delivery report).
A worker thread may also wait for a coroutine run on the loop (:meth:`LoopBridge.wait`:
a checkpoint before a revoke), up to a deadline.

The blocking calls go the other way, to a :class:`DaemonExecutor`: one daemon thread per
client. Not a ThreadPoolExecutor, whose threads the interpreter joins at exit: a
synchronous offset commit waits for an unreachable group coordinator for ever (measured:
still waiting after 200 s against a frozen broker, whatever ``socket.timeout.ms``), and
such a call must not keep a stopping instance alive.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

T = TypeVar("T")
P = ParamSpec("P")

_LOOP_CHECK = 1.0  # seconds between checks that the loop still runs while waiting


class LoopGoneError(RuntimeError):
    """The event loop closed before it could run a callback handed to it."""


class LoopBridge:
    """Runs callables on one event loop's thread; built on that thread."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.thread_id = threading.get_ident()
        self._posted: list[Callable[[], object]] = []
        self._posted_lock = threading.Lock()

    @property
    def on_loop_thread(self) -> bool:
        """Whether the caller runs on the loop's thread."""
        return threading.get_ident() == self.thread_id

    def call(self, function: Callable[[], T]) -> T:
        """``function()`` on the loop thread, waiting for its result or exception.

        Never call this from the loop thread while the loop is blocked waiting for the
        calling thread: the caller is a worker thread the loop is *awaiting*, not one
        it is blocked on, which is what keeps this deadlock-free.
        """
        if self.on_loop_thread:
            return function()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(function())
            except BaseException as exc:
                future.set_exception(exc)

        self._schedule(run)
        while True:
            try:
                return future.result(timeout=_LOOP_CHECK)
            except concurrent.futures.TimeoutError:
                if self.loop.is_closed():
                    future.cancel()
                    raise LoopGoneError("the event loop closed while a callback waited") from None

    def wait(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``work`` on the loop and wait for its result, from another thread.

        As :meth:`call`, deadlock-free because the loop is awaiting the calling thread,
        not blocked on it: the loop keeps running (agents, sinks, a checkpoint) while
        the caller waits. Past ``timeout`` seconds ``work`` is cancelled (whatever it
        shielded goes on) and TimeoutError raised. On the loop thread itself nothing
        could run ``work`` while the caller waits: that is refused (RuntimeError).
        """
        if self.on_loop_thread:
            work.close()
            raise RuntimeError("a coroutine cannot be waited for on its own loop's thread")
        try:
            future = asyncio.run_coroutine_threadsafe(work, self.loop)
        except RuntimeError as exc:  # the loop is closed
            work.close()
            raise LoopGoneError("the event loop is closed") from exc
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                return future.result(timeout=max(0.0, min(left, _LOOP_CHECK)))
            except concurrent.futures.TimeoutError:
                if self.loop.is_closed():
                    future.cancel()
                    raise LoopGoneError("the event loop closed while a coroutine ran") from None
                if left <= _LOOP_CHECK:
                    future.cancel()
                    raise TimeoutError(f"not done within {timeout:g} s") from None

    def post(self, function: Callable[[], object]) -> None:
        """``function()`` on the loop thread without waiting: now if already there.

        Posted calls run in order, in batches: a transaction's commit serves thousands of
        delivery reports on its worker thread, and one loop wake-up for all that arrived
        meanwhile costs far less than one each."""
        if self.on_loop_thread:
            function()
            return
        with self._posted_lock:
            self._posted.append(function)
            if len(self._posted) > 1:
                return  # a batch is already scheduled and will take this one too
        self._schedule(self._run_posted)

    def _run_posted(self) -> None:
        with self._posted_lock:
            batch, self._posted = self._posted, []
        for function in batch:
            try:
                function()
            except Exception as exc:  # as call_soon would: report it, run the others
                self.loop.call_exception_handler(
                    {"message": "a posted callback failed", "exception": exc}
                )

    def _schedule(self, function: Callable[[], object]) -> None:
        try:
            self.loop.call_soon_threadsafe(function)
        except RuntimeError as exc:  # the loop is closed
            raise LoopGoneError("the event loop is closed") from exc


class DaemonExecutor(concurrent.futures.Executor):
    """Runs submitted calls one at a time, in order, on one daemon thread."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._shut = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Queue ``fn(*args, **kwargs)``; its future resolves when it has run."""
        if self._shut:
            raise RuntimeError("the executor was shut down")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        self._calls.put(run)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Let the thread end after the calls already queued (it is never forced)."""
        if not self._shut:
            self._shut = True
            self._calls.put(None)
        if wait:
            self._thread.join()

    def _serve(self) -> None:
        while (call := self._calls.get()) is not None:
            call()

"""Calls posted to the loop from other threads all run, in order, on the loop thread; a
thread waits for a coroutine run on the loop, up to a timeout."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from connectors.kafka.loop import LoopBridge


async def test_posted_calls_run_in_order_on_the_loop_thread_even_when_one_fails() -> None:
    bridge = LoopBridge()
    ran: list[tuple[int, int]] = []
    failures: list[object] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _, context: failures.append(context["exception"]))

    done = asyncio.Event()

    def record(n: int) -> None:
        if n == 1999:
            done.set()
        if n == 500:
            raise ValueError("callback 500 fails")
        ran.append((n, threading.get_ident()))

    def worker() -> None:
        for n in range(2000):
            bridge.post(lambda n=n: record(n))  # type: ignore[misc]

    thread = threading.Thread(target=worker)
    thread.start()
    await asyncio.wait_for(done.wait(), 10)
    thread.join()
    assert [n for n, _ in ran] == [n for n in range(2000) if n != 500]
    assert {ident for _, ident in ran} == {threading.get_ident()}
    assert len(failures) == 1 and isinstance(failures[0], ValueError)


async def test_a_thread_waits_for_a_coroutine_on_the_loop_up_to_a_timeout() -> None:
    """What a revoke does with ``before_revoke``: the loop runs the coroutine while the
    thread waits; one that outlasts the timeout is cancelled and the thread told."""
    bridge = LoopBridge()
    cancelled = asyncio.Event()

    async def answer() -> int:
        await asyncio.sleep(0.05)
        return threading.get_ident()

    async def never_done() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    assert await asyncio.to_thread(bridge.wait, answer(), 5.0) == threading.get_ident()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.to_thread(bridge.wait, never_done(), 0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    await asyncio.wait_for(cancelled.wait(), 1.0)
    with pytest.raises(RuntimeError, match="its own loop's thread"):
        bridge.wait(answer(), 1.0)

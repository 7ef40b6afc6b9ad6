"""Calls posted to the loop from other threads all run, in order, on the loop thread."""

from __future__ import annotations

import asyncio
import threading

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

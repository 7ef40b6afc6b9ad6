"""Start-up steps that give way the moment a stop is asked for.

A step of the start that talks to the broker (checking and creating the topics) waits
for each answer up to the admin client's own timeout, 30 s an operation. A broker that
stopped answering after the clients connected held a SIGTERM that long, past the 10 s
``docker stop`` allows, and the start then failed on the timeout (exit 1) although the
stop had been asked for first. Raced against the stop, the step is cancelled instead
and the start ends as any stopped start does (exit 0).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class StoppedStarting(Exception):
    """Stop was asked for before the start was done (waiting for the broker, restoring):
    raised by :meth:`Service.start`, after which :meth:`Service.close` closes what it
    had opened."""


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """What ``work`` returns, or :class:`StoppedStarting` as soon as ``stop`` is set
    (``work`` is then cancelled; a client call in a thread finishes there, unwaited)."""
    if stop.is_set():
        work.close()
        raise StoppedStarting
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if stop.is_set():  # (even when the work ended at the same moment: the stop wins)
        raise StoppedStarting
    return task.result()

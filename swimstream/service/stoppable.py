"""Start-up steps that give way the moment a stop is asked for.

A step of the start that talks to the broker (checking and creating the topics,
reading the committed offsets and the changelog to restore state) waits for each answer
up to the client's own timeout: 30 s an admin operation, 10 s a consumer's request. A
broker that stopped answering after the clients connected held a SIGTERM that long
(past the 10 s ``docker stop`` allows, for the topics), and the start then failed on
the timeout (exit 1) although the stop had been asked for first. Raced against the
stop, the step is given up instead and the start ends as any stopped start does
(exit 0).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("swimstream.service")


class StoppedStarting(Exception):
    """Stop was asked for before the start was done (waiting for the broker, restoring):
    raised by :meth:`Service.start`, after which :meth:`Service.close` closes what it
    had opened."""


async def unless_stopped(work: Coroutine[Any, Any, T], stop: asyncio.Event) -> T:
    """What ``work`` returns, or :class:`StoppedStarting` as soon as ``stop`` is set.

    ``work`` is then cancelled and not waited for: a broker client's call in a thread
    cannot be interrupted, and the close that follows it in ``work`` waits for it (a
    Kafka consumer's close waits out its ``committed`` call, 10 s on a frozen broker).
    It finishes on its own, closing what it opened; the process may end before."""
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
            task.add_done_callback(_left_behind)
    if not task.done():
        raise StoppedStarting
    return task.result()  # (done as the stop came: what it opened is the caller's to close)


def _left_behind(task: asyncio.Future[Any]) -> None:
    """How a step given up on ended: nobody waits for it any more (its failure, such
    as the broker's timeout it was waiting out, is only logged)."""
    if not task.cancelled() and task.exception() is not None:
        log.debug("a start-up step given up at the stop ended: %s", task.exception())

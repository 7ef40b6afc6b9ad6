"""Start-up steps after the clients connected, waiting out a broker that went silent.

Checking the topics, restoring state and opening the source each ask the broker and
wait up to the client's own timeout (30 s an admin operation, 10 s a consumer's
request). A broker frozen there (SIGSTOP, a network partition, a broker restarting)
failed the start with exit 1 at that timeout, whereas the same silence before the
clients connected is waited for (:mod:`swimstream.service.broker_wait`): the README's
"what waiting may mend is waited for". Each such step is tried again instead, with the
same lines and back-off and the start-up port's ``/readyz`` saying what it waits for,
for as long as the failure is the broker's silence (``unreachable``); what waiting does
not mend (authorization, a missing topic not to be created, a refused setting) still
stops the start at once. A stop ends the wait at once, in the middle of a try too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

from swimstream.errors import BrokerError
from swimstream.service.broker_wait import START_RETRY_FIRST, START_RETRY_MAX
from swimstream.service.stoppable import StoppedStarting, unless_stopped
from swimstream.web.startup import StartingServer

T = TypeVar("T")

log = logging.getLogger("swimstream.service")


async def until_answered(
    step: str,
    attempt: Callable[[], Coroutine[Any, Any, T]],
    stop: asyncio.Event,
    starting: StartingServer,
    fields: Mapping[str, str],
) -> T:
    """What ``attempt()`` returns, tried again while it fails for a broker that does
    not answer; :class:`StoppedStarting` as soon as ``stop`` is set.

    ``attempt`` makes a fresh coroutine each try: it must leave nothing open when it
    fails (each step closes what it opened on its way out). ``fields``: the lines'
    (:func:`~swimstream.service.broker_wait.broker_fields`).

    Raises:
        BrokerError: one that waiting does not mend (not ``unreachable``).
    """
    starting.step = step
    started = time.monotonic()
    delay = START_RETRY_FIRST
    while True:
        try:
            return await unless_stopped(attempt(), stop)
        except BrokerError as exc:
            if stop.is_set():
                raise StoppedStarting from exc
            if not exc.unreachable:
                raise
            log.warning(
                "waiting for the broker (%.0f s so far, next try in %g s), %s: %s",
                time.monotonic() - started,
                delay,
                step,
                exc,
                extra=fields,
            )
            starting.set_waiting(f"{step}: waiting for the broker", started, str(exc))
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, START_RETRY_MAX)
        else:
            raise StoppedStarting

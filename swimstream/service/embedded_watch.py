"""An embedded broker that died stops the instance that started it.

With ``kind: embedded`` the broker is a child process of this one. Killed (the kernel's
OOM killer, a ``kill -9``) or crashed, nothing will start it again: the clients retried
for ever and the instance waited, ``/readyz`` red, and ``swimstream demo`` printed
"waiting for the broker to assign the readings partitions (about 3 s ...)" every second
until Ctrl-C. What waiting does not mend stops the instance, with exit 1 and the
broker's exit code and log in the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from swimstream.errors import BrokerError
from swimstream.service.wiring import ProtocolClients

BROKER_CHECK = 1.0
"""Seconds between two looks at the embedded broker's process."""


async def watch_embedded(clients: Iterable[ProtocolClients]) -> None:
    """Return never while the embedded brokers of ``clients`` run (at once when there
    are none); raise :class:`BrokerError` saying why once one has died."""
    checks: list[Callable[[], str | None]] = [
        c.broker_gone for c in clients if c.broker_gone is not None
    ]
    while checks:
        await asyncio.sleep(BROKER_CHECK)
        for gone in checks:
            reason = gone()
            if reason is not None:
                raise BrokerError(f"{reason}: nothing starts it again")

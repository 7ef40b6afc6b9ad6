"""Run agents in your own tests and notebooks: one process, a fake clock, no broker.

::

    from swimstream.testing import open_plane

    async def test_hot_device_alerts():
        async with open_plane({"/device/:id": Device}) as plane:
            await plane.command("/device/7", "reading", {"temp": 95, "tower": "a", "ts": 1})
            await plane.settle()
            assert plane.get("/device/7", "status")["temp"] == 95
            assert plane.insights[0].topic == "alerts"
            await plane.advance(60)  # fires the timers due in the next minute, in order

The plane is the same runtime the service uses, with a :class:`FakeClock` that moves
only when the test calls ``advance``, and published insights collected in
``plane.insights`` instead of going to a broker.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

from swimstream.agent import Agent
from swimstream.runtime import AgentStore, FakeClock, Plane

__all__ = ["FakeClock", "open_plane"]


@contextlib.asynccontextmanager
async def open_plane(
    routes: Mapping[str, type[Agent]],
    *,
    clock: FakeClock | None = None,
    store: AgentStore | None = None,
    idle_timeout: float | None = None,
    max_active: int | None = None,
    mailbox_capacity: int = 1024,
) -> AsyncIterator[Plane]:
    """A plane running ``routes`` on a fake clock; closed (agents stopped) on exit."""
    plane = Plane(
        routes,
        clock=clock if clock is not None else FakeClock(),
        store=store,
        idle_timeout=idle_timeout,
        max_active=max_active,
        mailbox_capacity=mailbox_capacity,
        replica_id="test-plane",
    )
    async with plane:
        yield plane

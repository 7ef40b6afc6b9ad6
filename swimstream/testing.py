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

For the parts around the plane (a record router, a lane sink, a recovery) there are a
consumed record held in memory (:class:`MemoryRecord`) and a sink connector that keeps
what it is given and reports deliveries when polled, as a client does
(:class:`MemorySink`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from swimstream.agent import Agent
from swimstream.runtime import AgentStore, FakeClock, Plane
from swimstream.streams import DeliveryCallback

__all__ = ["FakeClock", "MemoryRecord", "MemorySink", "SentRecord", "open_plane"]


@contextlib.asynccontextmanager
async def open_plane(
    routes: Mapping[str, type[Agent]],
    *,
    clock: FakeClock | None = None,
    store: AgentStore | None = None,
    idle_timeout: float | None = None,
    max_active: int | None = None,
    mailbox_capacity: int = 1000,
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


@dataclass(slots=True)
class MemoryRecord:
    """A consumed record held in memory (the ``InboundRecord`` protocol)."""

    _topic: str
    _partition: int
    _offset: int
    _key: bytes | None
    _value: bytes | None
    _headers: list[tuple[str, bytes]] = field(default_factory=list)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]]:
        return self._headers

    def error(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A record a :class:`MemorySink` was given."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]
    header_list: list[tuple[str, bytes]] = field(default_factory=list)
    """The headers as given, in order, a name given twice twice (``headers`` keeps the last)."""


class MemorySink:
    """A sink connector that keeps every record and reports its delivery on ``poll``.

    Only the producing half of the ``SinkConnector`` protocol: enough for publishers,
    lane sinks and dead letters.
    """

    def __init__(self, keep: bool = True) -> None:
        self.records: list[SentRecord] = []
        self.produced = 0
        self._keep = keep
        self._reports: list[DeliveryCallback] = []

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, bytes]] | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        self.produced += 1
        if self._keep:
            listed = list(headers or ())
            self.records.append(SentRecord(topic, key, value, dict(listed), listed))
        if on_delivery is not None:
            self._reports.append(on_delivery)

    def poll(self) -> None:
        """Report every record produced since the last poll as delivered."""
        reports, self._reports = self._reports, []
        for report in reports:
            report(None)

    async def flush(self, timeout: float) -> bool:
        """Report every record produced so far (``poll``); True: none is left."""
        self.poll()
        return True

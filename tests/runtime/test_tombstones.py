"""Map-like lanes that remove forever keep a bounded number of tombstones.

Each remove leaves a tombstone; a map forgets those older than ``TOMBSTONE_TTL_MS``
once they outnumber its entries (:mod:`swimstream.crdt.lww_map`). Without that, the
towers demo's ``MapLane(max_entries=50)`` kept a tombstone per reading ever evicted:
in memory, in every stored record of the agent, and in every snapshot a link took (a
soak of the demo at 2,000 readings/s grew 25 MB a minute). Replicas remove as their
owners do, so theirs must stay bounded too. Readings here come a second apart on the
plane's fake clock, as the demo's do for each device.
"""

from typing import Any

from swimstream import Agent, CommandLane, JoinValueLane, MapLane, ValueLane
from swimstream.agent.downlink import MapDownlink
from swimstream.crdt.lww_map import TOMBSTONE_TTL_MS, TOMBSTONES_KEPT
from swimstream.runtime import FakeClock, Plane
from swimstream.runtime.agent_record import dump_agent
from swimstream.testing import open_plane

HISTORY = 50
BOUND = max(TOMBSTONES_KEPT, HISTORY, 2 * (TOMBSTONE_TTL_MS // 1000 + 1))
"""The most tombstones a map removing once a second may hold (see the module above)."""


class Device(Agent):
    history = MapLane[int, float](max_entries=HISTORY)
    reading = CommandLane[int]()

    @reading.on_command
    def on_reading(self, ts: int) -> None:
        self.history[ts] = float(ts)


class Viewer(Agent):
    """Keeps a replica of a device's history, and writes into it through the link."""

    follow = CommandLane[str]()
    write = CommandLane[int]()

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.map_downlink(node, "history")

    @write.on_command
    def on_write(self, ts: int) -> None:
        self.replica().put(ts, -1.0)

    def replica(self) -> MapDownlink:
        (link,) = self.downlinks.values()
        assert isinstance(link, MapDownlink)
        return link


class Sensor(Agent):
    value = ValueLane[int](default=0)


class Tower(Agent):
    """Joins each sensor as it attaches, drops it as it leaves: one remove per move."""

    sensors = JoinValueLane[str, int]()
    attach = CommandLane[str]()
    detach = CommandLane[str]()

    @attach.on_command
    def on_attach(self, node: str) -> None:
        self.sensors.join(node, node=node, lane="value")

    @detach.on_command
    def on_detach(self, node: str) -> None:
        self.sensors.remove(node)


ROUTES = {"/device/:id": Device, "/viewer/:id": Viewer, "/sensor/:id": Sensor, "/tower/:id": Tower}


def lane(plane: Plane, node: str, name: str) -> Any:
    return plane.agent(node).lane(name)


async def test_a_bounded_map_lane_and_its_replica_keep_their_tombstones_bounded() -> None:
    clock = FakeClock()
    async with open_plane(ROUTES, clock=clock) as plane:
        await plane.command("/viewer/v", "follow", "/device/1")
        sizes, most, most_replica = [], 0, 0
        for ts in range(2_000):
            clock.advance(1.0)
            await plane.command("/device/1", "reading", ts)
            await plane.settle()
            history = lane(plane, "/device/1", "history")
            replica = plane.agent("/viewer/v").replica()  # type: ignore[attr-defined]
            most = max(most, history._map.tombstone_count)
            most_replica = max(most_replica, replica._replica.tombstone_count)
            if ts % 500 == 499:
                sizes.append(len(b"".join(dump_agent(plane.agent("/device/1")).values())))
        assert history.keys() == list(range(2_000 - HISTORY, 2_000))
        assert replica.to_dict() == dict(history.items())
        assert most <= BOUND and most_replica <= BOUND, (most, most_replica)
        assert max(sizes) <= 2 * min(sizes)  # the stored record does not grow either


async def test_a_write_through_lands_after_the_owner_forgot_tombstones() -> None:
    clock = FakeClock()
    async with open_plane(ROUTES, clock=clock) as plane:
        await plane.command("/viewer/v", "follow", "/device/1")
        for ts in range(500):
            clock.advance(1.0)
            await plane.command("/device/1", "reading", ts)
            await plane.settle()
        # The owner has forgotten most of its 450 removals' tombstones by now.
        assert lane(plane, "/device/1", "history")._map.tombstone_count <= BOUND
        await plane.command("/viewer/v", "write", 1_000_000)
        await plane.settle()
        assert lane(plane, "/device/1", "history").get(1_000_000) == -1.0
        replica = plane.agent("/viewer/v").replica()  # type: ignore[attr-defined]
        assert replica.get(1_000_000) == -1.0


async def test_a_join_lane_that_drops_links_keeps_its_tombstones_bounded() -> None:
    clock = FakeClock()
    async with open_plane(ROUTES, clock=clock) as plane:
        most = 0
        for n in range(1_000):
            clock.advance(1.0)
            plane.submit("/tower/t", "attach", f"/sensor/{n}")
            if n >= 10:
                plane.submit("/tower/t", "detach", f"/sensor/{n - 10}")
            await plane.settle()  # (the entry appears with the link's sync)
            most = max(most, lane(plane, "/tower/t", "sensors")._map.tombstone_count)
        assert len(lane(plane, "/tower/t", "sensors")) == 10
        assert most <= BOUND, most

"""Join lanes: a join map is the union of the maps it joins; joins replace links cleanly."""

from typing import Any

import pytest

from swimstream import (
    Agent,
    AgentRestoreError,
    CommandLane,
    DefinitionError,
    JoinMapLane,
    JoinValueLane,
    LaneNotFoundError,
    MapLane,
    NodeNotFoundError,
    ValueLane,
)
from swimstream.runtime import MemoryAgentStore, Plane
from swimstream.testing import open_plane


class Catalog(Agent):
    items = MapLane[str, Any]()


class Store(Agent):
    """Joins catalogs under link keys; records what its join lane reports."""

    stock = JoinMapLane[str, Any]()
    sources = CommandLane[dict[str, str]]()
    drop = CommandLane[str]()
    events: list[tuple[Any, ...]]

    def on_start(self) -> None:
        self.events = []

    @sources.on_command
    def on_source(self, spec: dict[str, str]) -> None:
        self.stock.join(spec["key"], spec["node"], "items")

    @drop.on_command
    def on_drop(self, link_key: str) -> None:
        self.stock.remove(link_key)

    @stock.on_update
    def stock_updated(self, key: str, new: Any, old: Any) -> None:
        self.events.append(("update", key, new, old))

    @stock.on_remove
    def stock_removed(self, key: str, old: Any) -> None:
        self.events.append(("remove", key, old))


STORES = {"/catalog/:id": Catalog, "/store/:id": Store}


def the_store(plane: Plane) -> Store:
    store = plane.agent("/store/s")
    assert isinstance(store, Store)
    return store


def store_events(plane: Plane) -> list[tuple[Any, ...]]:
    return the_store(plane).events


async def test_a_key_one_joined_map_removes_falls_back_to_another_map_that_holds_it() -> None:
    async with open_plane(STORES) as plane:
        await plane.command("/catalog/a", "items", {"update": "k", "value": "from-a"})
        await plane.command("/catalog/b", "items", {"update": "k", "value": "from-b"})
        for key in "ab":
            await plane.command("/store/s", "sources", {"key": key, "node": f"/catalog/{key}"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "from-b"}  # b's was delivered last
        store_events(plane).clear()
        await plane.command("/catalog/b", "items", {"remove": "k"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "from-a"}
        assert store_events(plane) == [("update", "k", "from-a", "from-b")]
        await plane.command("/catalog/a", "items", {"remove": "k"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {}
        assert store_events(plane)[1:] == [("remove", "k", "from-a")]


async def test_a_removed_key_falls_back_to_the_newest_write_among_the_maps_that_hold_it() -> None:
    async with open_plane(STORES) as plane:
        for node in "adc":  # written oldest first: of a, d and c, c holds the newest write
            await plane.command(f"/catalog/{node}", "items", {"update": "k", "value": node})
            await plane.settle()
        for key in "acdb":  # neither the first nor the last link joined holds the newest
            await plane.command("/store/s", "sources", {"key": key, "node": f"/catalog/{key}"})
        await plane.settle()
        await plane.command("/catalog/b", "items", {"update": "k", "value": "b"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "b"}
        await plane.command("/catalog/b", "items", {"remove": "k"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "c"}
        await plane.command("/catalog/c", "items", {"remove": "k"})  # c's link now holds it
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "d"}


async def test_removing_a_link_keeps_the_keys_another_joined_map_still_holds() -> None:
    async with open_plane(STORES) as plane:
        await plane.command("/catalog/a", "items", {"update": "k", "value": "from-a"})
        await plane.command("/catalog/b", "items", {"update": "k", "value": "from-b"})
        await plane.command("/catalog/b", "items", {"update": "only-b", "value": 1})
        for key in "ab":
            await plane.command("/store/s", "sources", {"key": key, "node": f"/catalog/{key}"})
        await plane.settle()
        store_events(plane).clear()
        await plane.command("/store/s", "drop", "b")
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "from-a"}
        assert sorted(store_events(plane)) == [
            ("remove", "only-b", 1),
            ("update", "k", "from-a", "from-b"),
        ]
        await plane.command("/catalog/b", "items", {"update": "k", "value": "b-again"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"k": "from-a"}  # b is no longer joined


async def test_rejoining_a_link_key_to_another_map_drops_the_old_map_s_entries() -> None:
    async with open_plane(STORES) as plane:
        await plane.command("/catalog/a", "items", {"update": "a1", "value": 1})
        await plane.command("/catalog/a", "items", {"update": "shared", "value": "a"})
        await plane.command("/catalog/b", "items", {"update": "b1", "value": 2})
        await plane.command("/catalog/c", "items", {"update": "shared", "value": "c"})
        await plane.command("/store/s", "sources", {"key": "keep", "node": "/catalog/c"})
        await plane.command("/store/s", "sources", {"key": "slot", "node": "/catalog/a"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"a1": 1, "shared": "a"}
        store_events(plane).clear()
        await plane.command("/store/s", "sources", {"key": "slot", "node": "/catalog/b"})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"shared": "c", "b1": 2}
        assert sorted(store_events(plane)) == [
            ("remove", "a1", 1),
            ("update", "b1", 2, None),
            ("update", "shared", "c", "a"),
        ]
        await plane.command("/catalog/a", "items", {"update": "a1", "value": 10})
        await plane.settle()
        assert "a1" not in plane.get("/store/s", "stock")
        assert the_store(plane).stock.joined() == {
            "keep": ("/catalog/c", "items"),
            "slot": ("/catalog/b", "items"),
        }


class Dial(Agent):
    level = ValueLane[float](default=0.5)


class Gauge(Agent):
    """Version one of ``/gauge/:id``: its ``level`` was a map lane."""

    level = MapLane[str, float]()


class GaugeV2(Agent):
    """Version two: ``level`` became a value lane, so a stored gauge no longer loads."""

    level = ValueLane[float](default=0.0)


class Panel(Agent):
    dials = JoinValueLane[str, Any]()
    follow = CommandLane[list[str]]()

    @follow.on_command
    def on_follow(self, spec: list[str]) -> None:
        self.dials.join(spec[0], spec[1], spec[2])


async def test_a_join_to_a_target_that_cannot_be_linked_keeps_the_key_s_old_link() -> None:
    store = MemoryAgentStore()
    async with open_plane({"/gauge/:id": Gauge}, store=store) as plane:
        await plane.command("/gauge/g", "level", {"update": "now", "value": 1.0})
        await plane.settle()
    routes = {"/dial/:id": Dial, "/gauge/:id": GaugeV2, "/panel/:id": Panel, **STORES}
    async with open_plane(routes, store=store) as plane:
        await plane.command("/dial/d", "level", 0.7)
        await plane.command("/panel/p", "follow", ["x", "/dial/d", "level"])
        await plane.settle()
        panel = plane.agent("/panel/p")
        assert isinstance(panel, Panel)
        for node, lane, error in (
            ("/nowhere/1", "level", NodeNotFoundError),
            ("/dial/d", "missing", LaneNotFoundError),
            ("/catalog/c", "items", DefinitionError),  # a map lane
            ("/gauge/g", "level", AgentRestoreError),
        ):
            with pytest.raises(error):
                panel.dials.join("x", node, lane)
            assert panel.dials.joined() == {"x": ("/dial/d", "level")}
            assert len(panel.downlinks) == 1  # no half-open link to the failed target
        await plane.command("/dial/d", "level", 0.9)
        await plane.settle()
        assert plane.get("/panel/p", "dials") == {"x": 0.9}


async def test_a_failed_rejoin_of_a_join_map_link_key_keeps_the_old_map_and_its_entries() -> None:
    async with open_plane(STORES) as plane:
        await plane.command("/catalog/a", "items", {"update": "a1", "value": 1})
        await plane.command("/store/s", "sources", {"key": "slot", "node": "/catalog/a"})
        await plane.settle()
        with pytest.raises(NodeNotFoundError):
            the_store(plane).stock.join("slot", "/nowhere/1", "items")
        assert the_store(plane).stock.joined() == {"slot": ("/catalog/a", "items")}
        assert plane.get("/store/s", "stock") == {"a1": 1}
        await plane.command("/catalog/a", "items", {"update": "a2", "value": 2})
        await plane.settle()
        assert plane.get("/store/s", "stock") == {"a1": 1, "a2": 2}

"""Links that stay right across restarts, deploys and failing callbacks.

- A link opened to another spelling of a node URI (``/sensor/aa:bb``, whose one spelling
  is ``/sensor/aa%3Abb``) worked until a restart, then heard nothing: its stored links
  were registered under the spelling the user wrote, where no lane looked.
- After a deploy that removed a lane or a route, registering stored links at start raised
  (the instance could not start), and a delivery to a subscriber whose route was gone
  raised inside the owner's ``set``, which was then neither stored nor called back.
- A map delivery carrying several changes stopped at the first callback that raised: the
  rest never reached the replica, for good.
"""

from __future__ import annotations

from typing import Any

import pytest

from swimstream import Agent, CommandLane, JoinMapLane, MapDownlink, MapLane, ValueLane
from swimstream.runtime import MemoryAgentStore, Plane
from swimstream.runtime.agent_record import LINKS, decode_links
from swimstream.testing import open_plane


class Sensor(Agent):
    reading = ValueLane[Any](default=None)
    other = ValueLane[Any](default=None)
    sets = ValueLane[int](default=0)

    @reading.on_set
    def counted(self, new: Any, old: Any) -> None:
        self.sets.set(self.sets.get() + 1)


class RenamedSensor(Agent):
    """The next release of Sensor: ``reading`` is gone."""

    other = ValueLane[Any](default=None)


class Watcher(Agent):
    last = ValueLane[Any](default=None)
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "reading", on_set=self.changed)
        self.downlink(node, "other", on_set=self.changed)

    def changed(self, new: Any, old: Any) -> None:
        self.last.set(new)


def close_every_link(agent: Agent) -> None:
    for downlink in list(agent.downlinks.values()):
        downlink.close()


def restore_stored_links(plane: Plane, store: MemoryAgentStore) -> None:
    """What the service does at start (durability): every stored link registered."""
    for node in list(store):
        stored = store.load(node)
        if stored is not None and LINKS in stored:
            plane.restore_links(node, decode_links(stored[LINKS])[1])


async def test_a_link_to_another_spelling_of_a_node_hears_it_after_a_restart() -> None:
    store = MemoryAgentStore()
    routes = {"/sensor/:id": Sensor, "/watcher/:id": Watcher}
    async with open_plane(routes, store=store) as plane:
        await plane.command("/watcher/w", "watch", "/sensor/aa:bb")
        await plane.command("/sensor/aa:bb", "reading", 1)
        await plane.settle()
        assert plane.get("/watcher/w", "last") == 1
        await plane.command("/watcher/w", "watch", "/sensor/aa%3Abb")  # the same links
        await plane.settle()
        assert len(plane.links) == 2
    async with open_plane(routes, store=store) as plane:
        restore_stored_links(plane, store)
        await plane.command("/sensor/aa:bb", "reading", 2)
        await plane.settle()
        assert plane.get("/watcher/w", "last") == 2
        await plane.call("/watcher/w", close_every_link)
        assert len(plane.links) == 0  # (closing a link of the other spelling left it)


async def test_stored_links_to_a_lane_a_deploy_removed_are_dropped_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = MemoryAgentStore()
    async with open_plane({"/sensor/:id": Sensor, "/watcher/:id": Watcher}, store=store) as plane:
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.settle()
    routes = {"/sensor/:id": RenamedSensor, "/watcher/:id": Watcher}
    async with open_plane(routes, store=store) as plane:
        restore_stored_links(plane, store)  # (raised: the instance could not start)
        assert len(plane.links) == 1
        await plane.command("/sensor/1", "other", 5)
        await plane.settle()
        assert plane.get("/watcher/w", "last") == 5
    assert "agent /watcher/w: a stored link is dropped" in caplog.text


async def test_an_owner_s_change_stands_when_a_subscriber_s_route_is_gone() -> None:
    store = MemoryAgentStore()
    async with open_plane({"/sensor/:id": Sensor, "/watcher/:id": Watcher}, store=store) as plane:
        await plane.command("/watcher/w", "watch", "/sensor/1")
        await plane.settle()
    async with open_plane({"/sensor/:id": Sensor}, store=store) as plane:  # watchers gone
        restore_stored_links(plane, store)
        for value in (1, 2):
            await plane.command("/sensor/1", "reading", value)
            await plane.settle()
        assert plane.get("/sensor/1", "reading") == 2
        assert plane.get("/sensor/1", "sets") == 2  # on_set ran each time
        assert plane.failures.count == 0
        linked = plane.links.linked_lanes("/sensor/1") or {}
        assert not linked.get("reading")  # the link went with its subscriber's route


class Owner(Agent):
    m = MapLane[str, Any]()
    both = CommandLane[list[list[Any]]]()

    @both.on_command
    def on_both(self, pairs: list[list[Any]]) -> None:
        for key, value in pairs:  # two puts in one turn: one delivery to a busy subscriber
            self.m[key] = value


class Picky(Agent):
    go = CommandLane[None]()
    joined = JoinMapLane[str, Any]()
    seen: list[str]

    @go.on_command
    def on_go(self, _: None) -> None:
        self.map_downlink("/owner/1", "m", on_update=self.updated)
        self.joined.join("o", node="/owner/1", lane="m")

    def updated(self, key: str, new: Any, old: Any) -> None:
        if new == "bad":
            raise ValueError("cannot handle this reading")

    @joined.on_update
    def joined_update(self, key: str, new: Any, old: Any) -> None:
        if new == "bad":
            raise ValueError("cannot handle this reading")


async def test_a_callback_that_raises_leaves_no_change_of_its_delivery_unapplied() -> None:
    async with open_plane({"/owner/:id": Owner, "/picky/:id": Picky}, idle_timeout=1000) as plane:
        await plane.command("/picky/1", "go", None)
        await plane.settle()
        assert plane.passivate("/picky/1")  # busy loading when the changes come: one batch
        await plane.command("/owner/1", "both", [["a", "bad"], ["b", 2]])
        await plane.settle()
        picky = plane.agent("/picky/1")
        [replica] = [d for d in picky.downlinks.values() if d.join is None]
        assert isinstance(replica, MapDownlink)
        assert replica.to_dict() == {"a": "bad", "b": 2}
        assert plane.get("/picky/1", "joined") == {"a": "bad", "b": 2}
        assert plane.failures.count == 2  # each callback's failure, reported

"""A shard leaving this instance: its changes held out of checkpoints, then forgotten."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from swimstream import Agent, CommandLane, MapLane, ValueLane
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import open_plane


class Meter(Agent):
    """A value, a map, a timer and a link: everything an agent can leave behind."""

    level = ValueLane[int](default=0)
    seen = MapLane[str, int]()
    read = CommandLane[int]()
    watch = CommandLane[str]()

    @read.on_command
    def on_read(self, n: int) -> None:
        self.level.set(n)
        self.seen[str(n)] = n
        self.schedule(3600, self.expire)

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "level")

    def expire(self) -> None: ...


def shard(node: str) -> int:
    """``/meter/<shard>-<name>``: the shard is in the name."""
    return int(node.rsplit("/", 1)[1].split("-")[0])


def names(tracker: StateTracker) -> set[tuple[str, str]]:
    return {(node, name) for node, name, _, _ in tracker.collect()}


@contextlib.asynccontextmanager
async def tracked() -> AsyncIterator[tuple[Plane, StateTracker, DurableAgentStore]]:
    """A plane of meters over durable state, its changes tracked by shard."""
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/meter/:id": Meter}, store=store) as plane:
        tracker = StateTracker(store, shard)
        tracker.attach(plane)
        yield plane, tracker, store


async def test_a_held_shard_stays_out_of_checkpoints_until_released() -> None:
    async with tracked() as (plane, tracker, _):
        await plane.command("/meter/0-a", "read", 1)
        await plane.command("/meter/1-b", "read", 2)
        await plane.settle()
        tracker.hold({1})
        assert {node for node, _ in names(tracker)} == {"/meter/0-a"}
        await plane.command("/meter/1-b", "read", 3)  # still noted while held
        await plane.settle()
        assert names(tracker) == set()
        tracker.release({1})
        assert {node for node, _ in names(tracker)} == {"/meter/1-b"}


async def test_a_forgotten_shard_leaves_no_agent_timer_link_or_note_behind() -> None:
    async with tracked() as (plane, tracker, store):
        await plane.command("/meter/1-b", "read", 7)
        await plane.command("/meter/1-c", "read", 8)
        await plane.command("/meter/1-b", "watch", "/meter/0-a")  # a link it opened
        await plane.command("/meter/0-a", "read", 9)
        await plane.settle()
        assert plane.passivate("/meter/1-c")  # passivated: in the store's overlay
        tracker.hold({1})
        links_before = len(plane.links)

        def leaving(node: str) -> bool:
            return shard(node) == 1

        assert plane.forget_agents(leaving) == 1
        tracker.forget(leaving)
        store.forget(leaving)
        assert not plane.is_active("/meter/1-b")
        assert [t.node_uri for t in plane.timers] == ["/meter/0-a"]
        assert len(plane.links) == links_before - 1
        assert store.overlay_size == 0 and store.load("/meter/1-c") is None
        tracker.release({1})
        assert {node for node, _ in names(tracker)} == {"/meter/0-a"}
        # Loaded afresh, the agent starts from what committed state holds (nothing here).
        await plane.command("/meter/0-a", "read", 10)  # the old link is gone: no delivery
        await plane.settle()
        assert not plane.is_active("/meter/1-b")  # (a delivery would have loaded it)

        def level(agent: Agent) -> int:
            assert isinstance(agent, Meter)
            return agent.level.get()

        assert await plane.call("/meter/1-b", level) == 0


async def checkpoint(tracker: StateTracker, store: DurableAgentStore) -> set[tuple[str, str]]:
    """What a checkpoint collects, once written to committed state."""
    entries = tracker.collect()
    generation = store.next_generation()
    await store.committed.write_async(entries, {})
    store.written(generation)
    return {(node, name) for node, name, _, _ in entries}


async def test_an_agent_passivated_while_its_shard_is_held_keeps_its_changes() -> None:
    """A change made after the revoke's checkpoint, to an agent passivated before its
    shard came back: the checkpoints between leave it out, and it must not be dropped
    from the overlay with them (the agent would load from committed state without it,
    and the group does not deliver the record again: the agents in memory had it)."""
    async with tracked() as (plane, tracker, store):
        await plane.command("/meter/1-b", "read", 2)
        await plane.settle()
        assert ("/meter/1-b", "level") in await checkpoint(tracker, store)
        tracker.hold({1})  # revoked; an eager rebalance hands it back soon
        await plane.command("/meter/1-b", "read", 3)
        await plane.settle()
        assert plane.passivate("/meter/1-b")
        assert await checkpoint(tracker, store) == set()
        assert await checkpoint(tracker, store) == set()  # (however many come meanwhile)
        tracker.release({1})
        assert ("/meter/1-b", "level") in await checkpoint(tracker, store)

        def level(agent: Agent) -> int:
            assert isinstance(agent, Meter)
            return agent.level.get()

        assert await plane.call("/meter/1-b", level) == 3

"""Links to an agent whose state was restored from elsewhere resync, and converge.

An instance that gains a shard reads its agents' state from the changelog, drops what
memory held of them, and they load afresh (see :mod:`swimstream.service.handover`). The
links that agents here opened to them before the move stay open: as in SwimOS, the
agent that comes back syncs them again, and that sync is its whole state, so every
replica shows what the restored agent holds (not the old view, not a merge of both).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from swimstream import Agent, CommandLane, JoinValueLane, MapLane, ValueLane
from swimstream.runtime import Plane
from swimstream.store.changelog import ChangelogEntry
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

TARGET = "/meter/0-t"
WATCHER = "/watcher/1-w"


class Meter(Agent):
    level = ValueLane[Any](default=None)
    seen = MapLane[str, int]()
    read = CommandLane[int]()
    drop = CommandLane[str]()

    @read.on_command
    def on_read(self, n: int) -> None:
        self.level.set(n)
        self.seen[str(n)] = n

    @drop.on_command
    def on_drop(self, key: str) -> None:
        self.seen.remove(key)


class Watcher(Agent):
    """Mirrors the meter's lanes through a value downlink, a map downlink and a join."""

    level = ValueLane[Any](default=None)
    seen = MapLane[str, int]()
    joined = JoinValueLane[str, Any]()
    watch = CommandLane[str]()

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "level", on_set=self.on_level)
        self.map_downlink(node, "seen", on_update=self.on_update, on_remove=self.on_remove)
        self.joined.join("t", node=node, lane="level")

    def on_level(self, new: Any, old: Any) -> None:
        self.level.set(new)

    def on_update(self, key: str, new: int, old: int | None) -> None:
        self.seen[key] = new

    def on_remove(self, key: str, old: int) -> None:
        self.seen.remove(key)


ROUTES: dict[str, type[Agent]] = {"/meter/:id": Meter, "/watcher/:id": Watcher}


def shard(node: str) -> int:
    return int(node.rsplit("/", 1)[1].split("-")[0])


@contextlib.asynccontextmanager
async def instance(replica: str, clock: FakeClock) -> AsyncIterator[tuple[Plane, StateTracker]]:
    """A plane over durable state, as one instance runs it, its changes tracked."""
    store = DurableAgentStore(MemoryCommitted())
    async with Plane(ROUTES, clock=clock, store=store, replica_id=replica) as plane:
        tracker = StateTracker(store, shard)
        tracker.attach(plane)
        yield plane, tracker


def view(plane: Plane) -> dict[str, Any]:
    return {
        "level": plane.get(WATCHER, "level"),
        "seen": plane.get(WATCHER, "seen"),
        "joined": plane.get(WATCHER, "joined"),
    }


async def moved_back(misplaced: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The meter's shard leaves instance B for A, which changes the meter, and comes
    back: B's watcher linked to the meter before the move. ``misplaced``: meanwhile B
    made a copy of the meter (a command between agents is not forwarded) and changed
    it, later than A did by B's clock. Returns (the meter's state on B after the
    restore, what B's watcher shows)."""
    clock_b = FakeClock()
    clock_a = FakeClock(start=clock_b.time() - 5)
    async with instance("B", clock_b) as (plane_b, tracker_b):
        await plane_b.command(WATCHER, "watch", TARGET)
        await plane_b.command(TARGET, "read", 1)
        await plane_b.command(TARGET, "read", 2)
        await plane_b.settle()
        assert view(plane_b) == {"level": 2, "seen": {"1": 1, "2": 2}, "joined": {"t": 2}}

        def meter(node: str) -> bool:
            return node == TARGET

        committed_b = plane_b.store.committed  # type: ignore[attr-defined]
        await committed_b.write_async(tracker_b.collect(), {})

        # Shard 0 goes to A, which restores the meter (B's committed state) and changes it.
        async with instance("A", clock_a) as (plane_a, tracker_a):
            committed_a = plane_a.store.committed  # type: ignore[attr-defined]
            await committed_a.write_async(
                [e for e in entries_of(committed_b) if shard(e.node_uri) == 0], {}
            )
            await plane_a.command(TARGET, "drop", "1")
            await plane_a.command(TARGET, "read", 3)
            await plane_a.command(TARGET, "drop", "3")  # level 3, seen {"2": 2}
            await plane_a.settle()
            moved = [e for e in tracker_a.collect() if e[0] == TARGET]
            if misplaced:
                plane_b.forget_agents(meter)  # (as the shard left B)
                await plane_b.command(TARGET, "read", 99)
                await plane_b.settle()
                assert view(plane_b)["level"] == 99

        # Shard 0 comes back to B: its changelog (A's checkpoint) restored, as the
        # handover does it, and the meter loaded again.
        plane_b.forget_agents(meter)
        tracker_b.forget(meter)
        plane_b.store.forget(meter)  # type: ignore[attr-defined]
        await committed_b.write_async(moved, {})
        assert plane_b.activate_existing(TARGET)
        await plane_b.settle()
        state = {
            "level": plane_b.get(TARGET, "level"),
            "seen": plane_b.get(TARGET, "seen"),
            "joined": {"t": plane_b.get(TARGET, "level")},
        }
        return state, view(plane_b)


def entries_of(committed: MemoryCommitted) -> list[ChangelogEntry]:
    """Committed state as changelog entries, as a restore from the changelog reads it."""
    return [
        ChangelogEntry(node, name, value, shard(node))
        for node, names in committed._state.items()
        for name, value in names.items()
    ]


async def test_a_link_to_an_agent_restored_after_its_shard_came_back_gets_its_state() -> None:
    state, seen = await moved_back(misplaced=False)
    assert state == {"level": 3, "seen": {"2": 2}, "joined": {"t": 3}}
    assert seen == state


async def test_the_resync_replaces_a_replica_whose_writes_the_restored_agent_never_had() -> None:
    """The restored state's stamps are older than what the replicas hold (and a removed
    key left no tombstone in the changelog): a merge would keep the old view."""
    state, seen = await moved_back(misplaced=True)
    assert state == {"level": 3, "seen": {"2": 2}, "joined": {"t": 3}}
    assert seen == state


class Hub(Agent):
    """Joins meters' levels and mirrors one through a downlink; notes every callback."""

    levels = JoinValueLane[str, Any]()
    calls = ValueLane[list[Any]](default=[])
    attach = CommandLane[str]()

    @attach.on_command
    def on_attach(self, node: str) -> None:
        self.levels.join(node, node=node, lane="level")
        self.downlink(node, "level", on_set=self.on_level)

    @levels.on_update
    def on_joined(self, key: str, new: Any, old: Any) -> None:
        self.calls.set([*self.calls.get(), ["update", key, new, old]])

    def on_level(self, new: Any, old: Any) -> None:
        self.calls.set([*self.calls.get(), ["set", new, old]])


async def test_a_resync_that_changes_nothing_calls_nothing() -> None:
    """The agent comes back holding what its links saw (a restore that read nothing
    new for it, a restart): its links sync again, and no callback runs for it."""
    routes: dict[str, type[Agent]] = {**ROUTES, "/hub/:id": Hub}
    store = DurableAgentStore(MemoryCommitted())
    async with Plane(routes, clock=FakeClock(), store=store, replica_id="B") as plane:
        await plane.command(TARGET, "read", 5)
        await plane.command("/hub/1-h", "attach", TARGET)
        await plane.settle()
        calls = [["update", TARGET, 5, None], ["set", 5, None]]
        assert plane.get("/hub/1-h", "calls") == calls
        assert plane.passivate(TARGET)
        plane.forget_agents(TARGET.__eq__)  # (the store still holds what it held)
        assert plane.activate_existing(TARGET)
        await plane.settle()
        assert plane.get("/hub/1-h", "calls") == calls
        assert plane.failures.count == 0

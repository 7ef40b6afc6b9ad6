"""A passivated agent's changed map entries are read from its stored snapshot once.

Collect looked each changed key up on its own: the agent's whole map snapshot was
decoded (and, for an agent read back from committed state, loaded and reassembled) once
per key, so a checkpoint's cut, routing stopped, took the square of the entries: 27 s
for a map of 4,000 entries all changed since the last checkpoint.
"""

from __future__ import annotations

from typing import Any

from swimstream import Agent, CommandLane, MapLane
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import encode_entry, entry_name
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

NODE = "/catalog/1"


class Catalog(Agent):
    items = MapLane[Any, Any]()
    load = CommandLane[int]()

    @load.on_command
    def on_load(self, count: int) -> None:
        for n in range(count):
            self.items.put(n if n % 3 else str(n), {"name": f"item {n}", "price": n})
        self.items.put(True, "spelt as a bool")  # (one entry with the key 1)


class CountingStore(DurableAgentStore):
    """Counts the reads of passivated agents' stored values."""

    reads = 0

    def passivated_value(self, node_uri: str, name: str) -> bytes | None:
        self.reads += 1
        return super().passivated_value(node_uri, name)


async def test_a_passivated_maps_changed_entries_decode_its_snapshot_once() -> None:
    store = CountingStore(MemoryCommitted())
    async with Plane({"/catalog/:id": Catalog}, clock=FakeClock(), store=store) as plane:
        tracker = StateTracker(store, lambda node: 0)
        tracker.attach(plane)
        await plane.command(NODE, "load", 300)
        await plane.settle()
        agent: Any = plane.agent(NODE)
        held = agent.items._map
        expected = sorted((entry_name("items", key), encode_entry(held, key)) for key in held)
        plane.passivate(NODE)
        rows = tracker.collect()
        assert sorted((name, value) for _, name, value, _ in rows) == expected
        assert store.reads == 1

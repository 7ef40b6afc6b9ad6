"""A checkpoint's collect packs the usual rows itself, and each is exactly what the
store's encoders make of its lane: a counter row once it has seen the encoder spell
one (a counter added to by this plane alone: a head, the total, a zero), checkpoint
after checkpoint, whatever the total grows to, and for counters of several replicas or
with subtractions; a value lane's object; a map entry holding the very object a value
lane holds (a join of that lane), checked once for both."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest

from swimstream import Agent, CommandLane, CounterLane, MapLane, ValueLane
from swimstream.crdt import CounterAdd, encode_counter, encode_register
from swimstream.errors import CodecError
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import encode_entry, entry_name
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

# Totals on each side of every width msgpack packs an integer in.
STEPS = [1, 126, 1, 1, 127, 1, 65_279, 1, 65_536, 4_294_836_224, 1, 2**40, 2**62]


class Meter(Agent):
    count = CounterLane()
    status = ValueLane[Any]()
    add = CommandLane[int]()

    @add.on_command
    def on_add(self, delta: int) -> None:
        self.count.add(delta)
        self.status.set({"delta": delta, "note": "x", "big": 2**63, "list": [1, 2.5]})


def counter_rows(tracker: StateTracker) -> dict[str, bytes | None]:
    return {row[0]: row[2] for row in tracker.collect() if row[1] == "count"}


async def checkpoints(steps: list[int], remote: CounterAdd | None) -> None:
    store = DurableAgentStore(MemoryCommitted())
    async with Plane({"/meter/:id": Meter}, clock=FakeClock(), store=store) as plane:
        tracker = StateTracker(store, lambda _node: 0)
        tracker.attach(plane)
        nodes = ["/meter/a", "/meter/b"]
        for number, delta in enumerate(steps):
            for node in nodes:
                await plane.command(node, "add", delta)
            await plane.settle()
            if remote is not None and number == len(steps) // 2:
                agent: Any = plane.agent(nodes[1])
                agent.count._counter.apply(remote)  # another replica's adds, merged
                tracker.dirty[agent.count] = None
            rows = counter_rows(tracker)
            assert set(rows) == set(nodes)
            for node in nodes:
                agent = plane.agent(node)
                assert rows[node] == encode_counter(agent.count._counter), (number, node)


def test_counter_rows_stay_the_encoders_as_totals_grow() -> None:
    asyncio.run(checkpoints(STEPS, None))


def test_counter_rows_with_subtractions() -> None:
    asyncio.run(checkpoints([3, -1, 5, -200, 1, 1], None))


@pytest.mark.parametrize("replica", ["other", "a-much-longer-replica-name-than-this-one"])
def test_counter_rows_with_another_replicas_adds(replica: str) -> None:
    asyncio.run(checkpoints([1, 2, 3, 4, 5, 6], CounterAdd((1, replica), 7, 7, 0)))


def test_value_rows_are_the_encoders() -> None:
    """A value lane's row, packed in collect for an object, is the encoder's bytes (an
    integer of 64 bits and a list inside it included)."""

    async def run() -> None:
        store = DurableAgentStore(MemoryCommitted())
        async with Plane({"/meter/:id": Meter}, clock=FakeClock(), store=store) as plane:
            tracker = StateTracker(store, lambda _node: 0)
            tracker.attach(plane)
            for delta in (1, 2):
                await plane.command("/meter/a", "add", delta)
                await plane.settle()
                rows = {row[1]: row[2] for row in tracker.collect()}
                agent: Any = plane.agent("/meter/a")
                assert rows["status"] == encode_register(agent.status._register)

    asyncio.run(run())


class Joined(Agent):
    status = ValueLane[Any]()
    entries = MapLane[Any, Any]()
    put = CommandLane[list[Any]]()

    @put.on_command
    def on_put(self, action: list[Any]) -> None:
        key, value = action
        self.status.set(value)
        self.entries.put(key, value)  # the very object the value lane holds
        self.entries.put(7, value)


@pytest.mark.parametrize(
    "value",
    [
        {"temp": 91.5, "tower": "t-3", "ts": 17},
        {"big": 2**63, "nested": {"list": [1, (2, 3)]}},  # the walk, and the other packer
        {"too big": 2**64},  # not storable: neither row is made
        {"nested": {1.5: "float key"}},
    ],
)
@pytest.mark.parametrize("key", ["/device/1", "é", 'q"uote:', 3])
def test_a_map_entry_holding_a_value_lanes_object(value: Any, key: Any) -> None:
    async def run() -> None:
        store = DurableAgentStore(MemoryCommitted())
        async with Plane({"/joined/:id": Joined}, clock=FakeClock(), store=store) as plane:
            tracker = StateTracker(store, lambda _node: 0)
            tracker.attach(plane)
            agent: Any = plane.agent("/joined/a")
            agent.on_put([key, value])  # (in process: the objects stay the same)
            assert agent.entries._map._entries[key][1] is agent.status._register._value
            rows = {row[1]: row[2] for row in tracker.collect()}
            expected: dict[str, bytes | None] = {}
            encoders: list[tuple[str, Callable[[], bytes | None]]] = [
                ("status", lambda: encode_register(agent.status._register)),
                (entry_name("entries", key), lambda: encode_entry(agent.entries._map, key)),
                (entry_name("entries", 7), lambda: encode_entry(agent.entries._map, 7)),
            ]
            for name, encode in encoders:
                with contextlib.suppress(CodecError):
                    expected[name] = encode()
            assert rows == expected

    asyncio.run(run())

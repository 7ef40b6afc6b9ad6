"""A cleared map lane's entries leave the store, as removed ones do.

A clear wrote only the lane's header (the stamp of the clear, which filters older
entries out when the lane is reassembled): every entry it removed stayed a row in the
local store, and a record in the compacted changelog, until its key was written again.
A lane keyed by something new each time and cleared now and then (readings of the
current window, keyed by time) kept every key it ever held: the store grew without end,
and each load of the agent read them all to drop them again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, MapLane
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import entry_name
from swimstream.store.sqlite import SQLiteStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

NODE = "/window/0"


class Window(Agent):
    readings = MapLane[int, float]()
    write = CommandLane[list[Any]]()

    @write.on_command
    def on_write(self, action: list[Any]) -> None:
        if action[0] == "put":
            self.readings.put(action[1], action[2])
        elif action[0] == "remove":
            self.readings.remove(action[1])
        else:
            self.readings.clear()


def stored_names(path: Path) -> list[str]:
    import sqlite3

    with sqlite3.connect(path) as raw:
        return [row[0] for row in raw.execute("SELECT name FROM state WHERE node = ?", [NODE])]


@pytest.mark.parametrize("sink", [False, True], ids=["store alone", "with a sink"])
async def test_keys_a_clear_removed_are_deleted_from_the_store(tmp_path: Path, sink: bool) -> None:
    local = SQLiteStore(tmp_path / "s.sqlite").open()
    store = DurableAgentStore(local)
    try:
        async with Plane({"/window/:id": Window}, clock=FakeClock(), store=store) as plane:
            if sink:
                seen: list[Any] = []
                plane.observe(lambda lane, op: seen.append(op), route="/window/:id")
            tracker = StateTracker(store, lambda node: 0)
            tracker.attach(plane)
            for window in range(3):
                for ts in range(window * 10, window * 10 + 10):
                    await plane.command(NODE, "write", ["put", ts, float(ts)])
                await plane.settle()
                await local.write_async(tracker.collect(), {})
                await plane.command(NODE, "write", ["clear"])
                await plane.command(NODE, "write", ["put", 100 + window, 1.0])
                await plane.settle()
                await local.write_async(tracker.collect(), {})
            assert sorted(stored_names(tmp_path / "s.sqlite")) == ["readings", "readings:102"]
            assert plane.get(NODE, "readings") == {102: 1.0}
    finally:
        local.close()


steps = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "remove", "clear", "passivate", "collect"]),
        st.integers(0, 4),
    ),
    max_size=25,
)


@settings(max_examples=100, deadline=None)
@given(steps)
def test_the_stored_entries_are_the_entries_held(script: list[tuple[str, int]]) -> None:
    asyncio.run(_stored_after(script))


async def _stored_after(script: list[tuple[str, int]]) -> None:
    committed = MemoryCommitted()
    store = DurableAgentStore(committed)
    async with Plane({"/window/:id": Window}, clock=FakeClock(), store=store) as plane:
        tracker = StateTracker(store, lambda node: 0)
        tracker.attach(plane)
        for verb, key in script:
            if verb == "collect":
                await _checkpoint(tracker, store, committed)
            elif verb == "passivate":
                plane.passivate(NODE)
            else:
                await plane.command(NODE, "write", [verb, key, float(key)])
            await plane.settle()
        await _checkpoint(tracker, store, committed)
        held = plane.get(NODE, "readings")
        stored = committed.load(NODE) or {}
        assert sorted(name for name in stored if name != "readings") == sorted(
            entry_name("readings", key) for key in held
        )


async def _checkpoint(
    tracker: StateTracker, store: DurableAgentStore, committed: MemoryCommitted
) -> None:
    rows = tracker.collect()
    generation = store.next_generation()
    await committed.write_async(rows, {})
    store.written(generation)

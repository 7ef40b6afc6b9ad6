"""Equal map keys of different types (``0`` and ``-0.0``, ``1``, ``1.0`` and ``True``)
are one entry of a map lane, which holds the spelling last written: a checkpoint and a
restore give back that spelling, as the lane held it, however many of them one
checkpoint saw."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, MapLane
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

NODE = "/keys/0"
KEYS = [0, -0.0, 0.0, False, 1, 1.0, True, 2, 2.0, "0"]


class Keyed(Agent):
    entries = MapLane[Any, Any]()
    write = CommandLane[list[Any]]()

    @write.on_command
    def on_write(self, action: list[Any]) -> None:
        verb, key = action
        if verb == "put":
            self.entries.put(key, repr(key))
        else:
            self.entries.remove(key)


def spelled(plane: Plane) -> list[tuple[str, str, Any]]:
    """The lane's entries with their keys' types: ``{1: v}`` equals ``{True: v}``."""
    lane = plane.agent(NODE).entries  # type: ignore[attr-defined]
    return sorted((type(k).__name__, repr(k), v) for k, v in lane.items())


steps = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["put", "put", "remove"]), st.sampled_from(KEYS)),
        st.sampled_from([("checkpoint", None), ("passivate", None)]),
    ),
    max_size=20,
)


async def run(script: list[tuple[str, Any]]) -> None:
    committed = MemoryCommitted()
    routes: dict[str, type[Agent]] = {"/keys/:id": Keyed}
    async with Plane(routes, clock=FakeClock(), store=DurableAgentStore(committed)) as plane:
        tracker = StateTracker(plane.store, lambda node: 0)  # type: ignore[arg-type]
        tracker.attach(plane)
        plane.agent(NODE)
        for verb, key in script:
            if verb == "checkpoint":
                await plane.settle()
                await committed.write_async(tracker.collect(), {})
            elif verb == "passivate":  # (its changes are then read from the store's copy)
                await plane.settle()
                plane.passivate(NODE)
            else:
                await plane.command(NODE, "write", [verb, key])
        await plane.settle()
        await committed.write_async(tracker.collect(), {})
        held = spelled(plane)
    async with Plane(routes, clock=FakeClock(), store=DurableAgentStore(committed)) as restored:
        assert restored.activate_existing(NODE) or not held
        assert spelled(restored) == held


@settings(max_examples=150, deadline=None)
@given(steps)
@example([("put", 0), ("put", -0.0)])  # (one checkpoint: restored as 0, the lane held -0.0)
@example([("put", 1), ("put", 1.0), ("put", True)])
@example([("put", True), ("checkpoint", None), ("put", 1), ("put", True)])
@example([("put", 1), ("put", 1.0), ("passivate", None)])
def test_a_restore_gives_back_the_key_spelling_the_lane_held(script: list[tuple[str, Any]]) -> None:
    asyncio.run(run(script))

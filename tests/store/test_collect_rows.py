"""A checkpoint's collect makes each row as the store's encoders spell it: its shortcuts
(entry names of integer and text keys built inline, the value and counter encoders
called directly, sizes checked as rows are made) change no byte and no choice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, CounterLane, MapLane, ValueLane
from swimstream.crdt import encode_counter, encode_register
from swimstream.errors import CodecError
from swimstream.runtime import Plane
from swimstream.store.changelog import ChangelogRow
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import encode_entry, entry_name
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

NODE = "/rows/0"

WRITTEN: list[tuple[str, Any]] = []
"""(verb, key) of each write that took effect: a write the lane refuses (an integer
beyond 64 bits) fails its command, which ``Plane.command`` does not raise."""


class Rows(Agent):
    entries = MapLane[Any, Any]()
    status = ValueLane[Any]()
    count = CounterLane()
    write = CommandLane[list[Any]]()

    @write.on_command
    def on_write(self, action: list[Any]) -> None:
        verb, key, value = action
        if verb == "put":
            self.entries.put(key, value)
        elif verb == "remove":
            self.entries.remove(key)
        elif verb == "set":
            self.status.set(value)
        else:
            self.count.add(key)
        WRITTEN.append((verb, key))


keys = (
    st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=6)
    | st.sampled_from([True, False, 1.0, -0.0, 2.5, "é", "\ud800", 'q"uote:'])
)
values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=4) | st.integers(-(2**70), 2**70),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=5,
)
actions = st.lists(
    st.tuples(st.sampled_from(["put", "put", "remove"]), keys, values)
    | st.tuples(st.just("set"), st.none(), values)
    | st.tuples(st.just("add"), st.integers(-5, 5), st.none()),
    max_size=12,
)


async def collected(script: list[tuple[str, Any, Any]], largest: int | None) -> None:
    routes: dict[str, type[Agent]] = {"/rows/:id": Rows}
    store = DurableAgentStore(MemoryCommitted())
    async with Plane(routes, clock=FakeClock(), store=store) as plane:
        tracker = StateTracker(store, lambda node: 3, largest)
        tracker.attach(plane)
        agent: Any = plane.agent(NODE)
        WRITTEN.clear()
        for verb, key, value in script:
            if verb == "remove" and key not in agent.entries._map._entries:
                continue  # (no change)
            await plane.command(NODE, "write", [verb, key, value])
            await plane.settle()
        touched = {key: key for verb, key in WRITTEN if verb in ("put", "remove")}
        rows = tracker.collect()
        expected: list[ChangelogRow] = []
        whole: list[tuple[str, str, Callable[[], bytes]]] = [
            ("set", "status", lambda: encode_register(agent.status._register)),
            ("add", "count", lambda: encode_counter(agent.count._counter)),
        ]
        for verb, name, encode in whole:
            if any(step[0] == verb for step in WRITTEN):
                with contextlib.suppress(CodecError):
                    expected.append((NODE, name, encode(), 3))
        for key in touched.values():
            try:
                value = encode_entry(agent.entries._map, key)
            except CodecError:
                continue
            expected.append((NODE, entry_name("entries", key), value, 3))
        if largest is not None:
            expected = [r for r in expected if len(r[0]) + len(r[1]) + len(r[2] or b"") < largest]
        assert sorted(rows, key=repr) == sorted(expected, key=repr)


@settings(max_examples=150, deadline=None)
@given(actions, st.none() | st.integers(10, 60))
def test_collected_rows_are_the_encoders_rows(
    script: list[tuple[str, Any, Any]], largest: int | None
) -> None:
    asyncio.run(collected(script, largest))

"""Whatever an agent writes, each row a checkpoint's collect makes is the store's
encoders' bytes for its lane or entry, and a value they refuse makes no row: collect
packs the usual value lanes, counters and map entries itself (``StateTracker.collect``),
and a changelog written by one path must read back as the other's. Values of every
kind the lanes take (numbers beyond 64 bits, NaN, nested containers, tuples, text of any
script), keys of every JSON scalar kind, a map entry holding the value lane's very
object, counters growing and shrinking across checkpoints."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CounterLane, MapLane, ValueLane
from swimstream.crdt import encode_counter, encode_register
from swimstream.errors import CodecError
from swimstream.runtime import Plane
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import encode_entry, entry_name
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock


class Thing(Agent):
    count = CounterLane()
    status = ValueLane[Any]()
    history = MapLane[Any, Any]()
    joined = MapLane[Any, Any]()


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.floats(allow_nan=True),
    st.text(max_size=4),
    st.integers(-(2**65), 2**65),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner),
        st.dictionaries(
            st.one_of(st.text(max_size=3), st.integers(-3, 3), st.booleans(), st.none()),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)
keys = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False),
)
Step = tuple[Any, list[tuple[Any, Any]], int, bool]
steps = st.lists(
    st.tuples(
        values, st.lists(st.tuples(keys, values), max_size=3), st.integers(-5, 2**64), st.booleans()
    ),
    min_size=1,
    max_size=4,
)


WHOLE: Any = ()
"""In place of a key: a write of a whole lane (map keys are never tuples)."""


def written(write: Any, *arguments: Any) -> bool:
    """Whether the lane took the write (it refuses a value or key it cannot store)."""
    try:
        write(*arguments)
    except TypeError:
        return False
    return True


def encoded(encode: Any, *arguments: Any) -> bytes | None:
    """The encoder's bytes, or None where it refuses (collect then makes no row)."""
    try:
        return encode(*arguments)  # type: ignore[no-any-return]
    except CodecError:
        return None


def write_step(agent: Any, step: Step) -> list[tuple[str, Any]]:
    """Write one step's values; returns (lane, key or WHOLE) of each write taken."""
    status, entries, delta, share = step
    touched: list[tuple[str, Any]] = []
    if written(agent.status.set, status):
        touched.append(("status", WHOLE))
    for key, value in entries:
        if written(agent.history.put, key, value):
            touched.append(("history", key))
    if share and written(agent.joined.put, "k", agent.status.get()):
        touched.append(("joined", "k"))  # (the value lane's very object)
    if written(agent.count.add, delta):
        touched.append(("count", WHOLE))
    return touched


@settings(max_examples=100, deadline=None)
@given(steps)
async def test_every_row_collect_makes_is_the_encoders_bytes(steps: list[Step]) -> None:
    store = DurableAgentStore(MemoryCommitted())
    async with Plane({"/thing/:id": Thing}, clock=FakeClock(), store=store) as plane:
        tracker = StateTracker(store, lambda _node: 0)
        tracker.attach(plane)
        for step in steps:
            touched = await plane.call("/thing/a", functools.partial(write_step, step=step))
            agent: Any = plane.agent("/thing/a")
            rows = {row[1]: row[2] for row in tracker.collect()}
            checked: dict[int, Any] = {}
            # Keys Python holds equal (0, False, 0.0) are one entry, stored under the
            # spelling written last: the one the row is made for.
            names = {
                lane if key is WHOLE else entry_name(lane, key): (lane, key)
                for lane, key in touched
            }
            for name, (lane, key) in names.items():
                if lane == "status":
                    want = encoded(encode_register, agent.status._register, checked)
                elif lane == "count":
                    want = encoded(encode_counter, agent.count._counter)
                else:
                    want = encoded(encode_entry, agent.lane(lane)._map, key, checked)
                if want is None:
                    assert name not in rows, name  # refused: no row, as the encoder says
                else:
                    assert rows[name] == want, name

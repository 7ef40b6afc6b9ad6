"""A lane that only the store follows keeps the store's notes itself, making no op for
a write (``ChangeNotes``): the tracker must see the same changed names, in the same
order, as when every write made an op for its ``lane_changed``, and checkpoints must
store the same bytes, through passivation, held shards, forgotten agents and every
lane kind's writes (evictions of a bounded map, removes, clears, joins)."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from swimstream import Agent, CounterLane, JoinMapLane, JoinValueLane, MapLane, ValueLane
from swimstream.agent import Lane
from swimstream.crdt import Op
from swimstream.runtime import Plane
from swimstream.store.changelog import ChangelogRow
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import FakeClock

ROWS = "/rows/0"
SOURCES = ["/src/0", "/src/1"]


class Source(Agent):
    value = ValueLane[Any]()
    items = MapLane[Any, Any]()


class Rows(Agent):
    status = ValueLane[Any]()
    recent = MapLane[int, Any](max_entries=3)
    entries = MapLane[Any, Any]()
    count = CounterLane()
    watched = CounterLane()  # (a callback: an op either way)
    followed = JoinValueLane[Any, Any]()
    merged = JoinMapLane[Any, Any]()

    @watched.on_change
    def on_watched(self, new: int, old: int) -> None:
        pass


ROUTES: dict[str, type[Agent]] = {"/rows/:id": Rows, "/src/:id": Source}


class CountingTracker(StateTracker):
    """Counts the ops it is handed: a write the lane noted itself makes none."""

    __slots__ = ("ops",)

    def lane_changed(self, lane: Lane, op: Op) -> None:
        self.ops = getattr(self, "ops", 0) + 1
        super().lane_changed(lane, op)


def _store() -> DurableAgentStore:
    return DurableAgentStore(MemoryCommitted())


def _sink(lane: Lane, op: Op) -> None:
    """A sink that drops what it sees: with it, every write makes an op."""


def notes_of(tracker: StateTracker) -> list[Any]:
    """The tracker's notes as names, in order, keys with their spelling."""
    whole = [k if type(k) is tuple else (k._agent.node_uri, k.name) for k in tracker.dirty]
    keyed = [
        (lane._agent.node_uri, lane.name, [(type(k).__name__, repr(k)) for k in keys.values()])
        for lane, keys in tracker.dirty_keys.items()
    ]
    return [whole, keyed]


values = st.none() | st.integers(-1000, 1000) | st.text(max_size=3)
keys = st.integers(0, 5) | st.sampled_from(["a", "b", 1.0, True, -0.0])
source = st.sampled_from([0, 1])
steps = st.lists(
    st.one_of(
        st.tuples(st.just("set"), values),
        st.tuples(st.just("recent"), st.integers(0, 6), values),
        st.tuples(st.just("put"), keys, values),
        st.tuples(st.sampled_from(["remove", "follow_off"]), keys),
        st.tuples(st.sampled_from(["take", "drop"]), st.integers(0, 3)),
        st.tuples(st.sampled_from(["add", "watch"]), st.integers(-3, 3)),
        st.tuples(st.just("src_set"), source, values),
        st.tuples(st.just("src_put"), source, keys, values),
        st.tuples(st.just("src_remove"), source, keys),
        st.tuples(st.just("follow"), keys, source),
        st.tuples(st.sampled_from(["merge", "merge_off"]), source),
        st.tuples(st.just("passivate"), st.sampled_from([ROWS, *SOURCES])),
        st.sampled_from(
            [("clear",), ("collect",), ("hold",), ("release",), ("forget",), ("collect",)]
        ),
    ),
    max_size=25,
)


def write(step: tuple[Any, ...]) -> tuple[str, Any]:
    """``step`` as (node, what to do in its turn)."""
    verb, *args = step
    src = f"/src/{args[0]}" if verb.startswith("src_") else ""
    actions: dict[str, tuple[str, Any]] = {
        "set": (ROWS, lambda a: a.status.set(args[0])),
        "recent": (ROWS, lambda a: a.recent.put(*args)),
        "put": (ROWS, lambda a: a.entries.put(*args)),
        "remove": (ROWS, lambda a: a.entries.remove(args[0])),
        "clear": (ROWS, lambda a: a.entries.clear()),
        "take": (ROWS, lambda a: a.entries.take(args[0])),
        "drop": (ROWS, lambda a: a.entries.drop(args[0])),
        "add": (ROWS, lambda a: a.count.add(args[0])),
        "watch": (ROWS, lambda a: a.watched.add(args[0])),
        "src_set": (src, lambda a: a.value.set(args[1])),
        "src_put": (src, lambda a: a.items.put(*args[1:])),
        "src_remove": (src, lambda a: a.items.remove(args[1])),
        "follow": (ROWS, lambda a: a.followed.join(args[0], f"/src/{args[1]}", "value")),
        "follow_off": (ROWS, lambda a: a.followed.remove(args[0])),
        "merge": (ROWS, lambda a: a.merged.join(args[0], f"/src/{args[0]}", "items")),
        "merge_off": (ROWS, lambda a: a.merged.remove(args[0])),
    }
    return actions[verb]


class Twin:
    """One plane of the pair, its store and its tracker."""

    def __init__(self, plane: Plane) -> None:
        assert isinstance(plane.store, DurableAgentStore)
        self.plane = plane
        self.store = plane.store
        self.committed = plane.store.committed
        self.tracker = CountingTracker(self.store, lambda node: 0 if node == ROWS else 1)

    async def step(self, step: tuple[Any, ...]) -> list[ChangelogRow] | None:
        """Take one step; the rows when it was a checkpoint."""
        assert isinstance(self.plane.clock, FakeClock)
        self.plane.clock.advance(1.0)  # (a fresh millisecond: stamps alike in both)
        verb = step[0]
        tracker = self.tracker
        if verb == "collect":
            rows = tracker.collect()
            generation = self.store.next_generation()
            await self.committed.write_async(rows, {})
            self.store.written(generation)
            return rows
        if verb == "hold":
            tracker.hold([1])
        elif verb == "release":
            tracker.release([1])
        elif verb == "forget":
            tracker.forget(lambda node: node == SOURCES[1])
        elif verb == "passivate":
            self.plane.passivate(step[1])
        else:
            node, action = write(step)
            await self.plane.call(node, action)
        await self.plane.settle()
        return None


async def run(script: list[tuple[Any, ...]]) -> None:
    async with (
        Plane(ROUTES, clock=FakeClock(), replica_id="r", store=_store()) as observed_plane,
        Plane(ROUTES, clock=FakeClock(), replica_id="r", store=_store()) as noting_plane,
    ):
        observed, noting = Twin(observed_plane), Twin(noting_plane)
        for twin in (observed, noting):
            twin.plane.agent(ROWS)  # (one agent before the tracker, the others after)
            twin.tracker.attach(twin.plane)
        observed.plane.observe(_sink, stateful_only=True)  # every write makes an op
        rows_of: list[Any] = [observed.plane.agent(ROWS), noting.plane.agent(ROWS)]
        assert rows_of[0].status._notes is None
        assert rows_of[1].status._notes is noting.tracker
        for step in script:
            rows = await observed.step(step)
            assert await noting.step(step) == rows, step
            assert notes_of(noting.tracker) == notes_of(observed.tracker), step
        final = observed.tracker.collect()
        assert noting.tracker.collect() == final
        assert observed.committed.load(ROWS) == noting.committed.load(ROWS)


@settings(max_examples=200, deadline=None)
@given(steps)
@example([("recent", n, n) for n in range(5)] + [("collect",)])  # evictions
@example([("recent", n, n) for n in range(3)] + [("collect",), ("recent", 3, 3), ("collect",)])
@example([("follow", 1, 0), ("src_set", 0, 5), ("merge", 1), ("src_put", 1, "a", 2)])
@example([("put", 1, "x"), ("put", True, "y"), ("passivate", ROWS), ("collect",)])
@example([("add", 2), ("hold",), ("collect",), ("release",), ("collect",)])
def test_lanes_noting_themselves_note_what_their_ops_did(script: list[tuple[Any, ...]]) -> None:
    asyncio.run(run(script))


async def test_a_lane_only_the_store_follows_makes_no_op() -> None:
    """The notes are kept by the writes themselves; a sink added later gets the ops."""
    store = _store()
    async with Plane(ROUTES, clock=FakeClock(), store=store) as plane:
        tracker = CountingTracker(store, lambda node: 0)
        tracker.attach(plane)
        agent: Any = plane.agent(ROWS)

        def writes(a: Any) -> None:
            a.status.set(1)
            a.recent.put(1, 1)
            a.count.add(1)

        await plane.call(ROWS, writes)
        assert getattr(tracker, "ops", 0) == 0
        assert set(notes_of(tracker)[0]) == {(ROWS, "status"), (ROWS, "count")}
        assert notes_of(tracker)[1] == [(ROWS, "recent", [("int", "1")])]
        seen: list[Op] = []
        plane.observe(lambda lane, op: seen.append(op), lane="recent")
        assert agent.recent._notes is None and agent.status._notes is tracker
        await plane.call(ROWS, writes)
        assert len(seen) == 1 and tracker.ops == 1  # the sink's lane: an op for both

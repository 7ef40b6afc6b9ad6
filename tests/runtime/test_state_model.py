"""Model-based: what agents hold survives passivation, reload and recovery unchanged.

Random interleavings of commands, link changes, timers, passivations and checkpoints
run against a plane; a plain-Python model says what each lane must hold: a value lane
its last set, a bounded map the newest keys by write order, a counter the sum of its
adds (from commands, timers and a writer's downlink), a join lane the current values
of what it joins. Each lane callback fires once per change it reports, never on a
restore. The durable variant recovers the changelog records of random checkpoints into
a fresh store and checks that a new plane loads the model as of the last checkpoint.
"""

from __future__ import annotations

import asyncio
import copy
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swimstream import (
    Agent,
    CommandLane,
    CounterLane,
    JoinMapLane,
    JoinValueLane,
    MapLane,
    ValueLane,
)
from swimstream.agent import ValueDownlink
from swimstream.runtime import MemoryAgentStore, Plane
from swimstream.runtime.agent_record import LINKS, TIMERS, decode_links, decode_timers
from swimstream.store.changelog import MARKER_KEY, Marker, entry_key, headers, marker_value
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.recovery import recover
from swimstream.store.tracker import StateTracker
from swimstream.streams import TopicPartition
from swimstream.testing import FakeClock, MemoryRecord, open_plane
from tests.store.test_recovery import ListReader

BOUND = 3
BOXES = ("/box/0", "/box/1", "/box/2")
PEN = "/pen/p"
HUB = "/hub/h"

CALLBACKS: list[tuple[Any, ...]] = []
"""Every lane callback the boxes ran, in order: (node, event, ...)."""


class Box(Agent):
    """The agent whose lanes everything else reads, writes and joins."""

    v = ValueLane[Any](default=None)
    m = MapLane[int, int](max_entries=BOUND)
    c = CounterLane()
    later = CommandLane[list[int]]()

    @v.on_set
    def on_v(self, new: Any, old: Any) -> None:
        CALLBACKS.append((self.node_uri, "set", new, old))

    @m.on_update
    def on_m_update(self, key: int, new: int, old: int | None) -> None:
        CALLBACKS.append((self.node_uri, "update", key, new, old))

    @m.on_remove
    def on_m_remove(self, key: int, old: int) -> None:
        CALLBACKS.append((self.node_uri, "remove", key, old))

    @c.on_change
    def on_c(self, new: int, old: int) -> None:
        CALLBACKS.append((self.node_uri, "change"))

    @later.on_command
    def on_later(self, spec: list[int]) -> None:
        self.schedule(spec[0], self.ring, spec[1])

    def ring(self, amount: int) -> None:
        self.c.add(amount)


class Pen(Agent):
    """Adds to boxes' counters through downlinks: a second writer of each counter."""

    add = CommandLane[list[Any]]()

    @add.on_command
    def on_add(self, spec: list[Any]) -> None:
        node, amount = spec
        for link in self.downlinks.values():
            if link.node_uri == node and isinstance(link, ValueDownlink):
                link.add(amount)
                return
        self.downlink(node, "c").add(amount)


class Hub(Agent):
    """Joins boxes' value and counter lanes (under keys) and their maps (by node)."""

    values = JoinValueLane[str, Any]()
    maps = JoinMapLane[int, int]()
    join = CommandLane[list[str]]()
    unjoin = CommandLane[str]()
    join_map = CommandLane[str]()
    unjoin_map = CommandLane[str]()

    @join.on_command
    def on_join(self, spec: list[str]) -> None:
        self.values.join(spec[0], spec[1], spec[2])

    @unjoin.on_command
    def on_unjoin(self, key: str) -> None:
        self.values.remove(key)

    @join_map.on_command
    def on_join_map(self, node: str) -> None:
        self.maps.join(node, node, "m")

    @unjoin_map.on_command
    def on_unjoin_map(self, node: str) -> None:
        self.maps.remove(node)


ROUTES = {"/box/:id": Box, "/pen/:id": Pen, "/hub/:id": Hub}


@dataclass
class BoxModel:
    v: Any = None
    m: dict[int, int] = field(default_factory=dict)  # insertion order is write order
    c: int = 0
    callbacks: list[tuple[Any, ...]] = field(default_factory=list)
    changes: int = 0  # on_change calls (their order against a pen's adds is free)


@dataclass
class Model:
    boxes: dict[str, BoxModel] = field(default_factory=lambda: {b: BoxModel() for b in BOXES})
    values: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (node, lane)
    maps: set[str] = field(default_factory=set)
    timers: list[tuple[float, int, str, int]] = field(default_factory=list)  # due, seq, node, n
    now: float = 0.0
    seq: int = 0

    def set_v(self, node: str, value: Any) -> None:
        box = self.boxes[node]
        box.callbacks.append((node, "set", value, box.v))
        box.v = value

    def put(self, node: str, key: int, value: int) -> None:
        box = self.boxes[node]
        old = box.m.pop(key, None)
        box.m[key] = value
        box.callbacks.append((node, "update", key, value, old))
        while len(box.m) > BOUND:
            oldest = next(iter(box.m))
            box.callbacks.append((node, "remove", oldest, box.m.pop(oldest)))

    def remove(self, node: str, key: int) -> None:
        box = self.boxes[node]
        if key in box.m:
            box.callbacks.append((node, "remove", key, box.m.pop(key)))

    def clear(self, node: str) -> None:
        box = self.boxes[node]
        for key, old in box.m.items():
            box.callbacks.append((node, "remove", key, old))
        box.m.clear()

    def add(self, node: str, amount: int) -> None:
        self.boxes[node].c += amount
        self.boxes[node].changes += 1

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted(t for t in self.timers if t[0] <= self.now)
        self.timers = [t for t in self.timers if t[0] > self.now]
        for _, _, node, amount in due:
            self.add(node, amount)

    def joined_values(self) -> dict[str, Any]:
        boxes = self.boxes
        return {key: getattr(boxes[node], lane) for key, (node, lane) in self.values.items()}

    def joined_maps(self) -> dict[int, int]:
        return {k: v for node in sorted(self.maps) for k, v in self.boxes[node].m.items()}


boxes = st.sampled_from(BOXES)
amounts = st.integers(-5, 5).filter(bool)
steps = st.one_of(
    st.tuples(st.just("set"), boxes, st.none() | st.integers(0, 3)),
    st.tuples(st.just("put"), boxes, st.integers(0, 5), st.integers(0, 9)),
    st.tuples(st.just("remove"), boxes, st.integers(0, 5)),
    st.tuples(st.just("clear"), boxes),
    st.tuples(st.just("add"), boxes, amounts),
    st.tuples(st.just("pen"), boxes, amounts),
    st.tuples(st.just("later"), boxes, st.integers(1, 20), amounts),
    st.tuples(st.just("advance"), st.integers(1, 15)),
    st.tuples(st.just("join"), st.sampled_from("abc"), boxes, st.sampled_from(["v", "c"])),
    st.tuples(st.just("unjoin"), st.sampled_from("abc")),
    st.tuples(st.just("join_map"), boxes),
    st.tuples(st.just("unjoin_map"), boxes),
    st.tuples(st.just("passivate"), st.sampled_from((*BOXES, PEN, HUB))),
    st.tuples(st.just("reload"), st.sampled_from((*BOXES, PEN, HUB))),
    st.tuples(st.just("checkpoint")),
)


async def run_step(plane: Plane, model: Model, step: tuple[Any, ...]) -> bool:
    """Apply one step to the plane and the model; True for a checkpoint."""
    match step:
        case ("set", node, value):
            await plane.command(node, "v", value)
            model.set_v(node, value)
        case ("put", node, key, value):
            key += 10 * BOXES.index(node)  # joined maps never share a key
            await plane.command(node, "m", {"update": key, "value": value})
            model.put(node, key, value)
        case ("remove", node, key):
            key += 10 * BOXES.index(node)
            await plane.command(node, "m", {"remove": key})
            model.remove(node, key)
        case ("clear", node):
            await plane.command(node, "m", {"clear": True})
            model.clear(node)
        case ("add", node, amount):
            await plane.command(node, "c", amount)
            model.add(node, amount)
        case ("pen", node, amount):
            await plane.command(PEN, "add", [node, amount])
            model.add(node, amount)
        case ("later", node, delay, amount):
            await plane.command(node, "later", [delay, amount])
            await plane.settle()  # scheduled now, due ``delay`` from now
            model.timers.append((model.now + delay, model.seq, node, amount))
            model.seq += 1
        case ("advance", seconds):
            await plane.advance(seconds)
            model.advance(seconds)
        case ("join", key, node, lane):
            await plane.command(HUB, "join", [key, node, lane])
            model.values[key] = (node, lane)
        case ("unjoin", key):
            await plane.command(HUB, "unjoin", key)
            model.values.pop(key, None)
        case ("join_map", node):
            await plane.command(HUB, "join_map", node)
            model.maps.add(node)
        case ("unjoin_map", node):
            await plane.command(HUB, "unjoin_map", node)
            model.maps.discard(node)
        case ("passivate", node):
            await plane.settle()
            if plane.is_active(node):
                assert plane.passivate(node)
        case ("reload", node):
            await plane.settle()
            if plane.is_active(node):
                assert plane.passivate(node)
            fired = len(CALLBACKS)
            plane.agent(node)
            await plane.settle()
            assert CALLBACKS[fired:] == [], "a restore ran lane callbacks"
        case ("checkpoint",):
            return True
    return False


async def check(plane: Plane, model: Model, callbacks: bool = True) -> None:
    """The plane holds what the model says (``callbacks``: and ran the callbacks)."""
    await plane.settle()
    for node, box in model.boxes.items():
        assert plane.get(node, "v") == box.v, node
        assert list(plane.lane(node, "m").items()) == list(box.m.items()), node  # type: ignore[attr-defined]
        assert plane.get(node, "c") == box.c, node
        if callbacks:
            ran = [c for c in CALLBACKS if c[0] == node]
            assert [c for c in ran if c[1] != "change"] == box.callbacks, node
            assert sum(1 for c in ran if c[1] == "change") == box.changes, node
    assert plane.get(HUB, "values") == model.joined_values()
    assert plane.get(HUB, "maps") == model.joined_maps()
    pen = plane.agent(PEN)
    for link in pen.downlinks.values():
        assert isinstance(link, ValueDownlink)
        assert link.get() == model.boxes[link.node_uri].c
    due = sorted((t.due - plane.clock.time() + model.now, t.node_uri) for t in plane.timers)
    assert due == sorted((t[0], t[2]) for t in model.timers)


async def seed(plane: Plane) -> None:
    """Wake every agent, so a model step never meets an agent that does not exist."""
    for node in (*BOXES, PEN, HUB):
        plane.agent(node)
    await plane.settle()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(steps, min_size=20, max_size=60))
def test_agents_hold_what_the_model_says_through_passivation(script: list[tuple[Any, ...]]) -> None:
    async def scenario() -> None:
        CALLBACKS.clear()
        model = Model()
        async with open_plane(ROUTES, store=MemoryAgentStore()) as plane:
            await seed(plane)
            for step in script:
                await run_step(plane, model, step)
            await check(plane, model)
            await plane.settle()  # (reads reloaded agents, which start in their next turn)
            for node in (*BOXES, PEN, HUB):  # everything stored, then loaded back
                assert plane.passivate(node)
            fired = len(CALLBACKS)
            await check(plane, model, callbacks=False)
            assert CALLBACKS[fired:] == []

    asyncio.run(scenario())


class Changelog:
    """Checkpoints of a plane as changelog records, as the checkpointer makes them."""

    def __init__(self, plane: Plane, store: DurableAgentStore) -> None:
        self.store = store
        self.tracker = StateTracker(store, lambda node: 0)
        self.tracker.attach(plane)
        self.records: list[MemoryRecord] = []
        self.number = 0

    async def checkpoint(self) -> None:
        entries = self.tracker.collect()
        generation = self.store.next_generation()
        self.number += 1
        cut = {"src/0": self.number}
        for node, name, value, _shard in entries:
            self.append(entry_key(node, name), value, headers(self.number, cut))
        self.append(MARKER_KEY, marker_value(Marker(self.number, cut)), headers(self.number, cut))
        await self.store.committed.write_async(entries, {})
        self.store.written(generation)

    def append(self, key: bytes, value: bytes | None, record_headers: list[Any]) -> None:
        offset = len(self.records)
        self.records.append(MemoryRecord("app.changelog", 0, offset, key, value, record_headers))

    async def recovered(self, spill_after: int | None = None) -> MemoryCommitted:
        committed = MemoryCommitted()
        offsets = {TopicPartition("src", 0): self.number}
        reader = ListReader(self.records, offsets)
        await recover(committed, reader, "app.changelog", 1, offsets, spill_after=spill_after)
        return committed


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(steps, min_size=20, max_size=60),
    st.lists(steps, max_size=10),
    st.sampled_from([None, 0, 7]),  # the tail held in memory, or spilled at once or later
)
def test_a_restart_from_the_changelog_loads_the_last_checkpoint(
    script: list[tuple[Any, ...]], after: list[tuple[Any, ...]], spill_after: int | None
) -> None:
    async def scenario() -> None:
        CALLBACKS.clear()
        model = Model()
        clock = FakeClock()
        store = DurableAgentStore(MemoryCommitted())
        async with open_plane(ROUTES, store=store, clock=clock) as plane:
            changelog = Changelog(plane, store)
            await seed(plane)
            checkpointed, checkpointed_at = copy.deepcopy(model), clock.time()
            for step in [*script, ("checkpoint",), *after]:  # what follows the last is lost
                if await run_step(plane, model, step):
                    await plane.settle()
                    await changelog.checkpoint()
                    checkpointed, checkpointed_at = copy.deepcopy(model), clock.time()
            await plane.close(put_away=False)
        committed = await changelog.recovered(spill_after)
        restarted = DurableAgentStore(committed)
        clock = FakeClock(checkpointed_at)  # timers due after the checkpoint stay pending
        async with open_plane(ROUTES, store=restarted, clock=clock) as plane:
            for node, value in committed.named(TIMERS):
                plane.restore_timers(node, decode_timers(value))
            for node, value in committed.named(LINKS):
                plane.restore_links(node, decode_links(value)[1])
            await check(plane, checkpointed, callbacks=False)

    asyncio.run(scenario())

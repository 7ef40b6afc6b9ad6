"""A bounded map lane that nothing follows evicts without making ops
(``LWWMap.remove_unseen``): once its agent's history is full, every reading evicts, and
the op of each eviction, made for no one, was a tenth of a towers reading. It must
leave what the op would have left: the same entries in the same order, the same
tombstones and stamps, the same ``on_remove`` calls, and a sink added later must get
the ops of the evictions after it."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, MapLane
from swimstream.crdt import MapRemove, Op
from swimstream.runtime import FakeClock, Plane

BOUND = 3


class Recent(Agent):
    history = MapLane[int, int](max_entries=BOUND)
    removed: list[tuple[str, int, int]] = []

    @history.on_remove
    def on_gone(self, key: int, old: int) -> None:
        Recent.removed.append((self.node_uri, key, old))


async def _writes(plane: Plane, keys: list[int]) -> list[tuple[int, int]]:
    """Put each key (value: its place in ``keys``); returns (key, old) of each eviction."""
    Recent.removed = []

    def put_all(agent: Any) -> None:
        for place, key in enumerate(keys):
            agent.history.put(key, place)

    await plane.call("/recent/0", put_all)
    await plane.settle()
    return [(key, old) for _, key, old in Recent.removed]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 8), max_size=20))
async def test_an_eviction_nothing_follows_leaves_what_its_op_would_have(keys: list[int]) -> None:
    routes = {"/recent/:id": Recent}
    async with (
        Plane(routes, clock=FakeClock(), replica_id="r") as followed,
        Plane(routes, clock=FakeClock(), replica_id="r") as alone,
    ):
        ops: list[Op] = []
        followed.observe(lambda lane, op: ops.append(op), lane="history")
        evicted = await _writes(followed, keys)
        assert await _writes(alone, keys) == evicted
        agents: list[Any] = [plane.agent("/recent/0") for plane in (followed, alone)]
        lanes = [agent.history for agent in agents]
        assert lanes[1]._map.snapshot() == lanes[0]._map.snapshot()
        assert lanes[1].keys() == lanes[0].keys()  # (write order: the next eviction's)
        assert [op.key for op in ops if isinstance(op, MapRemove)] == [k for k, _ in evicted]


async def test_a_sink_added_later_gets_the_evictions_after_it() -> None:
    async with Plane({"/recent/:id": Recent}, clock=FakeClock()) as plane:
        await _writes(plane, [1, 2, 3, 4])  # one eviction, made for no one
        ops: list[Op] = []
        plane.observe(lambda lane, op: ops.append(op), lane="history")
        assert await _writes(plane, [5]) == [(2, 1)]
        assert [op.key for op in ops if isinstance(op, MapRemove)] == [2]

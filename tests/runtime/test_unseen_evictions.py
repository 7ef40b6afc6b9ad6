"""A bounded map lane that no link follows evicts without a tombstone, and without an
op when nothing else follows it either (``LWWMap.forget``; ``LWWMap.evict`` makes the op
for its sinks): once its agent's history is full, every reading evicts, and the op of
each eviction, made for no one, was a tenth of a towers reading, the tombstones' keeping
another tenth. It must leave what a remove would have: the same entries in the same
order, the same ``on_remove`` calls, and a sink added later must get the ops of the
evictions after it. A lane a link follows keeps the tombstones, which keep a replica's
late writes of evicted keys out."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, MapLane
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
async def test_an_eviction_no_link_follows_leaves_what_a_remove_would_have(keys: list[int]) -> None:
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
        assert lanes[1].items() == lanes[0].items()
        assert lanes[1].keys() == lanes[0].keys()  # (write order: the next eviction's)
        assert lanes[0]._map.tombstone_count == lanes[1]._map.tombstone_count == 0
        assert [op.key for op in ops if isinstance(op, MapRemove)] == [k for k, _ in evicted]


async def test_a_sink_added_later_gets_the_evictions_after_it() -> None:
    async with Plane({"/recent/:id": Recent}, clock=FakeClock()) as plane:
        await _writes(plane, [1, 2, 3, 4])  # one eviction, made for no one
        ops: list[Op] = []
        plane.observe(lambda lane, op: ops.append(op), lane="history")
        assert await _writes(plane, [5]) == [(2, 1)]
        assert [op.key for op in ops if isinstance(op, MapRemove)] == [2]


class Follower(Agent):
    """Follows one agent's history through a link."""

    follow = CommandLane[str]()

    @follow.on_command
    def on_follow(self, node: str) -> None:
        self.map_downlink(node, "history")


ROUTES = {"/recent/:id": Recent, "/follower/:id": Follower}


async def test_evictions_leave_tombstones_only_while_a_link_follows_the_lane() -> None:
    async with Plane(ROUTES, clock=FakeClock()) as plane:
        await _writes(plane, list(range(1_000)))  # 997 evictions, no link
        history: Any = plane.agent("/recent/0").lane("history")
        assert history._map.tombstone_count == 0
        assert history.keys() == [997, 998, 999]
        await plane.command("/follower/f", "follow", "/recent/0")
        await plane.settle()
        follower: Any = plane.agent("/follower/f")
        (link,) = follower.downlinks.values()
        assert link.to_dict() == {997: 997, 998: 998, 999: 999}  # synced as it is
        await _writes(plane, [1_000, 1_001])  # two evictions a replica follows
        assert history._map.tombstone_count == 2
        assert link.to_dict() == dict(history.items())

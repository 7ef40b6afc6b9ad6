"""A link's change delivered alone (``_receive_op``) does what a coalesced delivery of
that one change (``_receive``) does: the same replica, the same callbacks, the same
sync state, for a plain value downlink and for a join's, in or out of order, repeated,
unchanged, and after a resync's mark."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, JoinValueLane, ValueLane
from swimstream.agent import ValueDownlink
from swimstream.crdt import HybridLogicalClock, LWWRegister, RegisterSet
from swimstream.testing import open_plane


class Source(Agent):
    level = ValueLane[Any](default=None)


class Watcher(Agent):
    """Keeps every ``on_set`` of its link and every update of its join."""

    joined = JoinValueLane[str, Any]()

    def on_start(self) -> None:
        self.seen: list[tuple[Any, ...]] = []
        self.link = self.downlink("/source/1", "level", on_set=self.level_set)
        self.joined.join("source", node="/source/1", lane="level")

    def level_set(self, new: Any, old: Any) -> None:
        self.seen.append(("set", new, old))

    @joined.on_update
    def on_joined(self, key: str, new: Any, old: Any) -> None:
        self.seen.append(("update", key, new, old))


def join_link(agent: Watcher) -> ValueDownlink:
    [link] = [d for d in agent.downlinks.values() if d is not agent.link]
    assert isinstance(link, ValueDownlink)
    return link


# (value, how far back its stamp is from the writer's newest, mark a resync before it)
DELIVERIES = st.lists(
    st.tuples(st.sampled_from([None, 1, 2, {"a": 1}]), st.integers(0, 3), st.booleans()),
    max_size=25,
)


async def deliver_both_ways(deliveries: list[tuple[Any, int, bool]]) -> None:
    async with open_plane({"/source/:id": Source, "/watcher/:id": Watcher}) as plane:
        for node in ("/watcher/alone", "/watcher/coalesced"):
            await plane.call(node, lambda agent: None)
        await plane.settle()
        writer = LWWRegister("writer", clock=HybridLogicalClock(lambda: 5))
        made: list[RegisterSet] = []
        for value, back, mark in deliveries:
            made.append(writer.set(value))
            op = made[max(0, len(made) - 1 - back)]  # (an older op: late or repeated)

            def alone(agent: Agent, op: RegisterSet = op, mark: bool = mark) -> None:
                assert isinstance(agent, Watcher)
                for link in (agent.link, join_link(agent)):
                    if mark:
                        link._replace_before(op.stamp[0])
                    link._receive_op(op)

            def coalesced(agent: Agent, op: RegisterSet = op, mark: bool = mark) -> None:
                assert isinstance(agent, Watcher)
                for link in (agent.link, join_link(agent)):
                    if mark:
                        link._replace_before(op.stamp[0])
                    link._receive(None, (op,))

            await plane.call("/watcher/alone", alone)
            await plane.call("/watcher/coalesced", coalesced)
            one, other = plane.agent("/watcher/alone"), plane.agent("/watcher/coalesced")
            assert isinstance(one, Watcher) and isinstance(other, Watcher)
            assert one.seen == other.seen
            assert one.joined.get("source") == other.joined.get("source")
            for mine, theirs in ((one.link, other.link), (join_link(one), join_link(other))):
                assert mine.get() == theirs.get()
                assert mine._replica._stamp == theirs._replica._stamp  # type: ignore[union-attr]
                assert mine._synced == theirs._synced


@settings(max_examples=150, deadline=None)
@given(DELIVERIES)
def test_a_change_delivered_alone_does_what_a_delivery_of_it_coalesced_does(
    deliveries: list[tuple[Any, int, bool]],
) -> None:
    asyncio.run(deliver_both_ways(deliveries))

"""A link's coalesced deliveries leave its subscriber where every op, one by one, would.

Between deliveries a link keeps the newest op per key (and the newest clear) of a map
lane, and the highest totals per writer of a counter; syncs come between the ops. A
subscriber fed that way must hold what one fed every op and sync holds, key types
included (``1``, ``1.0`` and ``True`` are one key, but a JSON client sees which).
"""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import HybridLogicalClock, LWWMap, PNCounter
from swimstream.runtime.coalesce import CounterPending, MapPending
from tests.crdt.replication import FakeWall, json_values

keys = st.sampled_from([0, False, 0.0, -0.0, 1, True, 1.0, None, "a", "", 2**64 - 1, 5e-324])


def typed(state: dict[Any, Any]) -> list[tuple[str, str, str]]:
    return sorted((type(k).__name__, repr(k), repr(v)) for k, v in state.items())


def owner_writes(owner: LWWMap, data: st.DataObject) -> list[Any]:
    action = data.draw(st.sampled_from(["put", "put", "put", "remove", "clear", "take", "drop"]))
    if action == "put":
        return [owner.put(data.draw(keys), data.draw(json_values))]
    if action == "remove":
        return [owner.remove(data.draw(keys))]
    if action == "clear":
        return [owner.clear()]
    count = data.draw(st.integers(0, 4))
    return list(owner.take(count) if action == "take" else owner.drop(count))


def deliver(pending: MapPending, subscriber: LWWMap) -> None:
    snapshot, ops = pending.take()
    if snapshot is not None:
        subscriber.merge(snapshot)  # type: ignore[arg-type]  # a map's: MapSnapshot
    for op in ops:
        subscriber.apply(op)  # type: ignore[arg-type]  # a map's ops


@given(st.data())
def test_a_map_subscriber_fed_coalesced_ops_holds_what_every_op_gives(
    data: st.DataObject,
) -> None:
    wall = FakeWall()
    owner = LWWMap("owner", HybridLogicalClock(wall))
    every_op = LWWMap("every", HybridLogicalClock(FakeWall()))
    coalesced = LWWMap("coalesced", HybridLogicalClock(FakeWall()))
    pending = MapPending()
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        wall.millis = data.draw(st.integers(0, 12))  # steps back too
        step = data.draw(st.sampled_from(["write", "write", "write", "deliver", "sync"]))
        if step == "write":
            for op in owner_writes(owner, data):
                every_op.apply(op)
                pending.add(op)
        elif step == "sync":
            every_op.merge(owner.snapshot())
            pending.add_snapshot(owner.snapshot())
        else:
            deliver(pending, coalesced)
    deliver(pending, coalesced)
    assert typed(coalesced.to_dict()) == typed(every_op.to_dict()) == typed(owner.to_dict())


@given(st.data())
def test_a_counter_subscriber_fed_the_highest_totals_counts_every_add_once(
    data: st.DataObject,
) -> None:
    writers = [PNCounter(f"w{i}") for i in range(3)]
    every_op, coalesced = PNCounter("every"), PNCounter("coalesced")
    pending = CounterPending()
    for _ in range(data.draw(st.integers(0, 40), label="steps")):
        step = data.draw(st.sampled_from(["add", "add", "deliver", "sync"]))
        if step == "add":
            op = data.draw(st.sampled_from(writers)).add(data.draw(st.integers(-5, 5)))
            for replica in (*writers, every_op):
                replica.apply(op)
            pending.add(op)
        elif step == "sync":
            every_op.merge(writers[0].snapshot())
            pending.add_snapshot(writers[0].snapshot())
        else:
            for taken in pending.take()[1]:
                coalesced.apply(taken)  # type: ignore[arg-type]  # a counter's: CounterAdd
    for taken in pending.take()[1]:
        coalesced.apply(taken)  # type: ignore[arg-type]
    assert coalesced.snapshot() == every_op.snapshot() == writers[0].snapshot()

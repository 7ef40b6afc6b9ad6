from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import HybridLogicalClock, LWWRegister, RegisterSet, decode, encode
from tests.crdt.replication import FakeWall, build_network, deliver_everything, json_values


def make(replica_id: str, clock: HybridLogicalClock) -> LWWRegister:
    return LWWRegister(replica_id, clock=clock)


def write(replica: LWWRegister, data: st.DataObject) -> list[Any]:
    return [replica.set(data.draw(json_values))]


def test_two_replicas_set_at_the_same_time_agree_on_the_higher_replica_id() -> None:
    wall = FakeWall(1_000)  # both clocks read the same millisecond
    a = LWWRegister("alpha", clock=HybridLogicalClock(wall))
    b = LWWRegister("beta", clock=HybridLogicalClock(wall))
    op_a, op_b = a.set("from a"), b.set("from b")
    assert op_a.ts == op_b.ts
    assert b.apply(op_a) is False  # beta's own write wins the tie
    assert a.apply(op_b) is True
    assert a.get() == b.get() == "from b"


def test_apply_is_idempotent_and_reports_change() -> None:
    a, b = LWWRegister("a"), LWWRegister("b")
    op = a.set(42)
    assert b.apply(op) is True
    assert b.apply(op) is False
    assert b.get() == 42


def test_a_later_write_with_the_same_value_is_not_a_visible_change() -> None:
    a, b = LWWRegister("a"), LWWRegister("b")
    b.apply(a.set(1))
    assert b.apply(a.set(1)) is False
    assert b.stamp == a.stamp


def test_a_write_after_observing_a_skewed_peer_wins() -> None:
    ahead = LWWRegister("ahead", clock=HybridLogicalClock(FakeWall(10_000)))
    behind = LWWRegister("behind", clock=HybridLogicalClock(FakeWall(10)))
    behind.apply(ahead.set("old"))
    ahead.apply(behind.set("new"))  # made after seeing "old": must supersede it
    assert ahead.get() == behind.get() == "new"


@given(st.data())
def test_replicas_converge_whatever_the_delivery(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    deliver_everything(data, net)
    values = [r.get() for r in net.replicas]
    assert all(v == values[0] for v in values)
    if net.ops:
        winner = max(net.ops, key=lambda op: op.stamp)
        assert all(r.stamp == winner.stamp for r in net.replicas)
        assert values[0] == winner.value


@given(st.data())
def test_snapshot_then_further_ops_equals_all_ops(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    cut = data.draw(st.integers(0, len(net.ops)))
    partial = LWWRegister("p")
    for op in net.ops[:cut]:
        partial.apply(op)
    restored = LWWRegister.from_snapshot(decode(encode(partial.snapshot())), "p2")  # type: ignore[arg-type]
    full = LWWRegister("f")
    for op in net.ops:
        full.apply(op)
    for op in net.ops[cut:]:
        restored.apply(op)
    assert restored.snapshot() == full.snapshot()


def _replica_with(ops: list[RegisterSet], name: str) -> LWWRegister:
    replica = LWWRegister(name)
    for op in ops:
        replica.apply(op)
    return replica


def _merged(*parts: LWWRegister) -> LWWRegister:
    result = LWWRegister.from_snapshot(parts[0].snapshot(), "m")
    for part in parts[1:]:
        result.merge(part)
    return result


@given(st.data())
def test_merge_is_commutative_associative_and_idempotent(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    a, b, c = (
        _replica_with(data.draw(st.lists(st.sampled_from(net.ops))) if net.ops else [], n)
        for n in "abc"
    )
    assert _merged(a, b).snapshot() == _merged(b, a).snapshot()
    assert _merged(_merged(a, b), c).snapshot() == _merged(a, _merged(b, c)).snapshot()
    assert _merged(a, a).snapshot() == a.snapshot()


@given(st.lists(json_values, max_size=6))
def test_an_unseen_set_leaves_the_state_a_set_does(values: list[Any]) -> None:
    """A lane nothing watches sets without making ops (``set_unseen``): what it holds,
    syncs and stores must be what ``set`` would have left, its stamp included."""
    seen, unseen = (LWWRegister("r", clock=HybridLogicalClock(FakeWall(5))) for _ in range(2))
    for value in values:
        op = seen.set(value)
        unseen.set_unseen(value)
        assert unseen.snapshot() == seen.snapshot()
        assert unseen.stamp == op.stamp


def test_an_op_wins_by_its_time_then_by_its_writer_s_id() -> None:
    """Newer times win whatever the ids; at equal times the greater writer id wins; an
    op at the stamp held, or older, changes nothing."""
    register = LWWRegister("m")
    assert register.apply(RegisterSet((10, "m"), "first"))
    assert not register.apply(RegisterSet((9, "z"), "older, greater id"))
    assert not register.apply(RegisterSet((10, "a"), "same time, smaller id"))
    assert not register.apply(RegisterSet((10, "m"), "same stamp"))
    assert register.get() == "first"
    assert register.apply(RegisterSet((10, "n"), "same time, greater id"))
    assert register.apply(RegisterSet((11, "a"), "newer, smaller id"))
    assert register.get() == "newer, smaller id"
    assert register.stamp == (11, "a")

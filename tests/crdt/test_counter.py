from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import (
    CounterAdd,
    CounterSnapshot,
    HybridLogicalClock,
    PNCounter,
    decode,
    encode,
)
from swimstream.crdt.counter import MAX_TOTAL
from tests.crdt.replication import build_network, deliver_everything


def make(replica_id: str, clock: HybridLogicalClock) -> PNCounter:
    return PNCounter(replica_id, clock=clock)


def write(replica: PNCounter, data: st.DataObject) -> list[Any]:
    return [replica.add(data.draw(st.integers(-1_000, 1_000)))]


def test_five_replicas_with_duplicated_delivery_count_every_add_once() -> None:
    replicas = [PNCounter(f"r{i}") for i in range(5)]
    ops = []
    for round_ in range(20):
        for i, replica in enumerate(replicas):
            ops.append(replica.add(i + 1 if round_ % 3 else -(i + 1)))
    for replica in replicas:
        for op in ops + ops[::2] + list(reversed(ops)):  # everything, some three times
            replica.apply(op)
    expected = sum(op.delta for op in ops)
    assert expected != 0
    assert [r.value for r in replicas] == [expected] * 5


def test_apply_reports_change_only_when_the_count_moves() -> None:
    a, b = PNCounter("a"), PNCounter("b")
    op = a.add(3)
    assert b.apply(op) is True
    assert b.apply(op) is False
    assert b.apply(a.add(0)) is False


def test_a_replica_restored_from_the_owner_continues_its_own_totals() -> None:
    owner, writer = PNCounter("owner"), PNCounter("writer-1")
    owner.apply(writer.add(5))
    resumed = PNCounter.from_snapshot(owner.snapshot(), "writer-1")
    owner.apply(resumed.add(2))
    assert owner.value == 7


def test_a_replace_takes_the_owners_totals_but_keeps_the_writers_own() -> None:
    owner, writer, other = PNCounter("owner"), PNCounter("w"), PNCounter("x")
    for op in (owner.add(2), other.add(3), writer.add(4)):
        owner.apply(op)
        writer.apply(op)
    restored = PNCounter.from_snapshot(CounterSnapshot((("owner", 2, 0), ("w", 1, 0))), "owner")
    sync = [CounterAdd((0, r), 0, p, n) for r, p, n in restored.snapshot().totals]
    assert writer.replace(sync) is True
    assert writer.snapshot() == CounterSnapshot((("owner", 2, 0), ("w", 4, 0)))
    restored.apply(writer.add(0))  # (the writer sends its totals again)
    assert restored.value == writer.value == 6
    assert writer.replace(sync) is False


@given(st.data())
def test_replicas_converge_to_the_sum_of_all_adds(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    deliver_everything(data, net)
    expected = sum(op.delta for op in net.ops)
    assert [r.value for r in net.replicas] == [expected] * len(net.replicas)
    snapshots = {r.snapshot() for r in net.replicas}
    assert len(snapshots) == 1


@given(st.data())
def test_snapshot_then_further_ops_equals_all_ops(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    cut = data.draw(st.integers(0, len(net.ops)))
    partial = PNCounter("p")
    for op in net.ops[:cut]:
        partial.apply(op)
    snapshot = decode(encode(partial.snapshot()))
    assert isinstance(snapshot, CounterSnapshot)
    restored = PNCounter.from_snapshot(snapshot, "p2")
    for op in net.ops[cut:]:
        restored.apply(op)
    full = PNCounter("f")
    for op in net.ops:
        full.apply(op)
    assert restored.snapshot() == full.snapshot()


def _merged(*parts: PNCounter) -> PNCounter:
    result = PNCounter.from_snapshot(parts[0].snapshot(), "m")
    for part in parts[1:]:
        result.merge(part)
    return result


@given(st.data())
def test_merge_is_commutative_associative_and_idempotent(data: st.DataObject) -> None:
    net = build_network(data, make, write)

    def draw_replica(name: str) -> PNCounter:
        replica = PNCounter(name)
        for op in data.draw(st.lists(st.sampled_from(net.ops))) if net.ops else []:
            assert isinstance(op, CounterAdd)
            replica.apply(op)
        return replica

    a, b, c = draw_replica("a"), draw_replica("b"), draw_replica("c")
    assert _merged(a, b).snapshot() == _merged(b, a).snapshot()
    assert _merged(_merged(a, b), c).snapshot() == _merged(a, _merged(b, c)).snapshot()
    assert _merged(a, a).snapshot() == a.snapshot()


@given(st.lists(st.integers(-(2**63) + 1, 2**63 - 1), max_size=8))
def test_an_add_past_64_bit_totals_is_refused_and_changes_nothing(deltas: list[int]) -> None:
    """Every count a counter takes is one its store holds and JSON writes: three adds of
    2**63 - 1 made one neither could, and a restart lost it."""
    counter = PNCounter("r")
    positive = negative = 0
    for delta in deltas:
        before = counter.snapshot()
        try:
            op = counter.add(delta)
        except OverflowError as exc:
            assert "beyond 9223372036854775807" in str(exc)
            assert counter.snapshot() == before
            continue
        positive, negative = op.positive, op.negative
        assert decode(encode(op)) == op
    assert max(positive, negative) <= MAX_TOTAL
    assert counter.value == positive - negative
    assert decode(encode(counter.snapshot())) == counter.snapshot()
    assert -(2**63) < counter.value < 2**63


@given(st.lists(st.integers(-(2**64), 2**64), max_size=8))
def test_an_unseen_add_leaves_the_totals_an_add_does(deltas: list[int]) -> None:
    """A lane nothing watches adds without making ops (``add_unseen``): what it holds,
    syncs and stores must be what ``add`` would have left, refusals included."""
    seen, unseen = PNCounter("r"), PNCounter("r")
    for delta in deltas:
        try:
            seen.add(delta)
        except OverflowError as exc:
            refused = str(exc)
        else:
            refused = ""
        try:
            unseen.add_unseen(delta)
        except OverflowError as exc:
            assert str(exc) == refused
        else:
            assert not refused
        assert unseen.snapshot() == seen.snapshot()
        assert unseen.value == seen.value


LARGE_DELTAS = st.sampled_from([2**62, -(2**62), 2**61]) | st.integers(-(2**62), 2**62)


def write_large(replica: PNCounter, data: st.DataObject) -> list[Any]:
    """An add of up to a quarter of 64 bits either way; one the bound refuses makes no op."""
    try:
        return [replica.add(data.draw(LARGE_DELTAS))]
    except OverflowError as exc:
        assert "the most a counter holds" in str(exc)
        return []


@given(st.data())
def test_replicas_whose_adds_sum_past_64_bits_converge_within_them(data: st.DataObject) -> None:
    """Concurrent writers each held within the bound may sum past it together: every
    replica then reads the same count, the bound, as JSON writes it (orjson refused
    the sum, and every read of the lane failed)."""
    net = build_network(data, make, write_large)
    deliver_everything(data, net)
    total = sum(op.delta for op in net.ops)
    expected = max(-MAX_TOTAL, min(MAX_TOTAL, total))
    assert [r.value for r in net.replicas] == [expected] * len(net.replicas)
    assert [r.get() for r in net.replicas] == [expected] * len(net.replicas)
    assert len({r.snapshot() for r in net.replicas}) == 1


@given(st.lists(st.integers(-(2**62), 2**62), max_size=12))
def test_an_add_past_the_bound_of_the_count_is_refused_and_changes_nothing(
    deltas: list[int],
) -> None:
    """A writer that knows the count (one replica alone here) never takes it past the
    bound, and an unseen add refuses what an add does."""
    seen, unseen = PNCounter("r"), PNCounter("r")
    other = PNCounter("o")
    for delta in deltas:
        for counter in (seen, unseen):
            before = counter.snapshot()
            try:
                if counter is seen:
                    op = counter.add(delta)
                    other.apply(op)
                else:
                    counter.add_unseen(delta)
            except OverflowError as exc:
                assert counter.snapshot() == before
                if -MAX_TOTAL <= counter.value + delta <= MAX_TOTAL:  # its total's bound
                    assert "total of this writer" in str(exc)
        assert seen.snapshot() == unseen.snapshot()
        assert -MAX_TOTAL <= seen._value <= MAX_TOTAL
        assert seen.value == other.value == seen._value

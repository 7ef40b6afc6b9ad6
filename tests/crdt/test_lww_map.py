from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import (
    HybridLogicalClock,
    LWWMap,
    MapClear,
    MapKey,
    MapPut,
    MapRemove,
    MapSnapshot,
    decode,
    key_order,
)
from swimstream.crdt.codec import encode
from swimstream.crdt.lww_map import TOMBSTONE_TTL_MS, TOMBSTONES_KEPT
from tests.crdt.replication import (
    FakeWall,
    build_network,
    deliver_everything,
    json_values,
    map_keys,
)


def make(replica_id: str, clock: HybridLogicalClock) -> LWWMap:
    return LWWMap(replica_id, clock=clock)


def write(replica: LWWMap, data: st.DataObject) -> list[Any]:
    action = data.draw(
        st.sampled_from(["put", "put", "put", "remove", "remove", "clear", "take", "drop"])
    )
    if action == "put":
        return [replica.put(data.draw(map_keys), data.draw(json_values))]
    if action == "remove":
        return [replica.remove(data.draw(map_keys))]
    if action == "clear":
        return [replica.clear()]
    count = data.draw(st.integers(0, 4))
    return list(replica.take(count) if action == "take" else replica.drop(count))


def canonical(state: LWWMap | MapSnapshot) -> tuple[Any, ...]:
    snap = state.snapshot() if isinstance(state, LWWMap) else state
    return (
        sorted(snap.entries, key=lambda e: key_order(e[0])),
        sorted(snap.tombstones, key=lambda t: key_order(t[0])),
        snap.cleared,
        snap.floor,
    )


def expected_map(ops: list[Any]) -> dict[Any, Any]:
    """Direct computation: per key, the newest put survives unless a newer remove or clear."""
    last_clear = max((op.stamp for op in ops if isinstance(op, MapClear)), default=(0, ""))
    newest: dict[Any, Any] = {}
    for op in ops:
        if not isinstance(op, MapPut | MapRemove) or op.stamp <= last_clear:
            continue
        if op.key not in newest or op.stamp > newest[op.key].stamp:
            newest[op.key] = op
    return {k: op.value for k, op in newest.items() if isinstance(op, MapPut)}


def test_remove_concurrent_with_put_on_another_replica_resolves_by_stamp() -> None:
    for remover_id, writer_id, survives in (("a", "b", True), ("b", "a", False)):
        wall = FakeWall(500)  # both replicas act in the same millisecond
        remover = LWWMap(remover_id, clock=HybridLogicalClock(wall))
        writer = LWWMap(writer_id, clock=HybridLogicalClock(wall))
        remove = remover.remove("k")
        put = writer.put("k", 2)
        assert remove.stamp[0] == put.stamp[0]  # a true tie: the replica id decides
        remover.apply(put)
        writer.apply(remove)
        expected = {"k": 2} if survives else {}
        assert remover.to_dict() == writer.to_dict() == expected


def test_remove_concurrent_with_put_where_the_remove_is_newer() -> None:
    a = LWWMap("a", clock=HybridLogicalClock(FakeWall(900)))
    b = LWWMap("b", clock=HybridLogicalClock(FakeWall(100)))
    put = b.put("k", 2)
    remove = a.remove("k")
    a.apply(put)
    b.apply(remove)
    assert a.to_dict() == b.to_dict() == {}


def test_a_put_with_an_old_timestamp_arriving_after_the_remove_does_not_resurrect() -> None:
    writer = LWWMap("w", clock=HybridLogicalClock(FakeWall(10)))
    remover = LWWMap("r", clock=HybridLogicalClock(FakeWall(20)))
    late_put = writer.put("k", "stale")
    remover.apply(writer.put("k", "seen"))
    remover.remove("k")
    assert remover.apply(late_put) is False
    assert "k" not in remover
    assert remover.tombstone_count == 1


def test_a_put_older_than_a_clear_does_not_survive_it() -> None:
    a = LWWMap("a", clock=HybridLogicalClock(FakeWall(50)))
    b = LWWMap("b", clock=HybridLogicalClock(FakeWall(10)))
    old = b.put("x", 1)
    a.put("y", 2)
    clear = a.clear()
    assert a.apply(old) is False
    assert len(a) == 0
    b.apply(clear)  # b has now seen the clear: its next put orders after it
    assert a.apply(b.put("z", 3)) is True
    assert a.to_dict() == b.to_dict() == {"z": 3}


def test_take_and_drop_follow_key_order_and_replicate_as_removes() -> None:
    a, b = LWWMap("a"), LWWMap("b")
    keys: list[MapKey] = ["d", 3, "a", 1, "c"]
    for key in keys:
        b.apply(a.put(key, str(key)))
    removes = a.take(3)
    assert sorted(a.keys(), key=key_order) == [1, 3, "a"]
    assert all(isinstance(op, MapRemove) for op in removes)
    for op in removes:
        b.apply(op)
    assert b.to_dict() == a.to_dict() == {1: "1", 3: "3", "a": "a"}
    a.drop(2)
    assert a.to_dict() == {"a": "a"}


def test_compact_drops_tombstones_below_the_stable_time_and_ignores_older_ops() -> None:
    wall = FakeWall(100)
    m = LWWMap("a", clock=HybridLogicalClock(wall))
    put = m.put("k", 1)
    m.remove("k")
    wall.millis = 200
    m.put("j", 2)
    m.remove("j")
    assert m.tombstone_count == 2
    stable = HybridLogicalClock(FakeWall(150)).now()
    assert m.compact(stable) == 1
    assert m.tombstone_count == 1
    assert m.apply(put) is False  # a duplicate from before the stable time
    assert m.to_dict() == {}


def test_oldest_key_is_the_least_recently_written() -> None:
    m = LWWMap("a")
    for key in ["x", "y", "z"]:
        m.put(key, 0)
    m.put("x", 1)
    assert m.oldest_key() == "y"


@given(st.data())
def test_replicas_converge_to_the_direct_computation(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    deliver_everything(data, net)
    states = [canonical(r) for r in net.replicas]
    assert all(s == states[0] for s in states)
    assert net.replicas[0].to_dict() == expected_map(net.ops)


@given(st.data())
def test_snapshot_then_further_ops_equals_all_ops(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    cut = data.draw(st.integers(0, len(net.ops)))
    partial = LWWMap("p")
    for op in net.ops[:cut]:
        partial.apply(op)
    snapshot = decode(encode(partial.snapshot()))
    assert isinstance(snapshot, MapSnapshot)
    restored = LWWMap.from_snapshot(snapshot, "p2")
    for op in net.ops[cut:]:
        restored.apply(op)
    full = LWWMap("f")
    for op in net.ops:
        full.apply(op)
    assert canonical(restored) == canonical(full)


def _replica_with(ops: list[Any], name: str, compact_at: int | None) -> LWWMap:
    replica = LWWMap(name)
    for op in ops:
        replica.apply(op)
    if compact_at is not None:
        replica.compact(compact_at)
    return replica


def _merged(*parts: LWWMap) -> LWWMap:
    result = LWWMap.from_snapshot(parts[0].snapshot(), "m")
    for part in parts[1:]:
        result.merge(part)
    return result


@given(st.data())
def test_merge_is_commutative_associative_and_idempotent(data: st.DataObject) -> None:
    net = build_network(data, make, write)
    # Compaction is only legal below a time every replica has seen everything before,
    # so replicas that compact hold every op older than the floor.
    floor = data.draw(st.one_of(st.none(), st.integers(0, 14 << 16)))

    def draw_replica(name: str) -> LWWMap:
        chosen = data.draw(st.lists(st.sampled_from(net.ops))) if net.ops else []
        if floor is not None:
            chosen += [op for op in net.ops if op.stamp[0] < floor]
        return _replica_with(chosen, name, floor if data.draw(st.booleans()) else None)

    a, b, c = draw_replica("a"), draw_replica("b"), draw_replica("c")
    assert canonical(_merged(a, b)) == canonical(_merged(b, a))
    assert canonical(_merged(_merged(a, b), c)) == canonical(_merged(a, _merged(b, c)))
    assert canonical(_merged(a, a)) == canonical(a)


def test_a_bounded_map_keeps_its_recent_tombstones_not_every_removed_key() -> None:
    # Keep the newest 50 keys, one write a second: every write past the 50th removes
    # a key. A tombstone per removed key, kept for ever, would grow without end.
    wall = FakeWall(1_000_000)
    m = LWWMap("a", clock=HybridLogicalClock(wall))
    most = 0
    for second in range(2_000):
        wall.millis += 1_000
        m.put(second, float(second))
        if len(m) > 50:
            m.remove(m.oldest_key())
        most = max(most, m.tombstone_count)
    ttl_seconds = TOMBSTONE_TTL_MS // 1_000
    assert 1_950 - most > 1_000  # far fewer than the keys removed
    assert most <= max(TOMBSTONES_KEPT, 50, 2 * (ttl_seconds + 1))
    # The recent removes still keep a late put of their key out.
    tombstones = dict(m.snapshot().tombstones)
    recent = max(tombstones, key=key_order)
    late = MapPut((tombstones[recent][0] - 1, "b"), recent, "late")
    assert m.apply(late) is False and recent not in m.to_dict()


def test_tombstones_younger_than_the_ttl_are_kept_however_many_there_are() -> None:
    wall = FakeWall(1_000_000)
    m = LWWMap("a", clock=HybridLogicalClock(wall))
    puts = [m.put(n, n) for n in range(500)]
    for n in range(500):
        m.remove(n)
    assert m.tombstone_count == 500  # all younger than the TTL: none forgotten
    assert not any(m.apply(put) for put in puts) and m.to_dict() == {}


def test_replace_before_drops_what_the_owner_lost_before_a_time_and_keeps_later_writes() -> None:
    wall = FakeWall(1_000)
    clock = HybridLogicalClock(wall)
    owner, replica = LWWMap("owner", clock=clock), LWWMap("replica", clock=clock)
    for key in ("a", "b", "c"):
        replica.apply(owner.put(key, 1))
    owner.remove("b")
    owner.compact(clock.now())  # the owner forgot the remove's tombstone
    wall.millis = 2_000
    opened = clock.now()
    replica.put("d", 4)  # written here after the link opened: the owner's to see yet
    replica.merge(owner.snapshot())
    assert replica.to_dict() == {"a": 1, "b": 1, "c": 1, "d": 4}  # merge alone keeps b
    assert replica.replace_before(owner.snapshot(), opened) is True
    assert replica.to_dict() == {"a": 1, "c": 1, "d": 4}
    assert replica.replace_before(owner.snapshot(), opened) is False


def test_replace_before_gives_up_newer_writes_the_owner_never_had() -> None:
    """An owner restored from an older checkpoint lost writes its replica saw: a put
    and a remove newer than the owner's own entries, which a merge would keep."""
    wall = FakeWall(1_000)
    clock = HybridLogicalClock(wall)
    owner, replica = LWWMap("owner", clock=clock), LWWMap("replica", clock=clock)
    for key in ("a", "b"):
        replica.apply(owner.put(key, 1))
    replica.put("a", 2)  # the owner applied these, then lost them with its restore
    replica.remove("b")
    marked = clock.now()
    replica.put("c", 3)  # written after the mark: the owner's to see yet
    replica.merge(owner.snapshot())
    assert replica.to_dict() == {"a": 2, "c": 3}  # merge alone keeps the lost writes
    assert replica.replace_before(owner.snapshot(), marked) is True
    assert replica.to_dict() == {"a": 1, "b": 1, "c": 3}


def test_keys_no_store_or_replica_could_find_again_are_refused_when_put() -> None:
    """A NaN key made a new entry at each put that no remove could reach, here or on
    a replica (whose decoded NaN is another object); a key beyond 64 bits made every
    snapshot of the map unencodable."""
    m = LWWMap("a")
    for key in (float("nan"), 2**64, -(2**63) - 1, (1, 2)):
        try:
            m.put(key, 1)  # type: ignore[arg-type]
        except TypeError:
            continue
        raise AssertionError(f"{key!r} was taken as a key")
    edge_keys: list[Any] = [2**64 - 1, -(2**63), float("inf"), -0.0, 5e-324, "\u00e9\U0001f600"]
    ops = [m.put(key, n) for n, key in enumerate(edge_keys)]
    assert m.to_dict() == dict(zip(edge_keys, range(len(edge_keys)), strict=True))
    replica = LWWMap("b")
    for op in ops:
        replica.apply(_round_trip(op))
    assert replica.to_dict() == m.to_dict()
    for key in edge_keys:
        replica.apply(_round_trip(m.remove(key)))
    assert replica.to_dict() == m.to_dict() == {}


def _round_trip(op: MapPut | MapRemove) -> MapPut | MapRemove:
    decoded = decode(encode(op))
    assert isinstance(decoded, MapPut | MapRemove)
    return decoded


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "put", "remove"]),
            map_keys | st.sampled_from([float("nan"), 2**64, (1, 2)]),
            json_values,
        ),
        max_size=12,
    )
)
def test_an_unseen_put_or_remove_leaves_the_state_a_put_or_remove_does(
    writes: list[tuple[str, Any, Any]],
) -> None:
    """A lane nothing watches puts without making ops (``put_unseen``): what it holds,
    syncs and stores must be what ``put`` would have left, stamps, tombstones (of the
    removes between) and refusals included."""
    seen, unseen = (LWWMap("r", HybridLogicalClock(FakeWall(5))) for _ in range(2))
    for action, key, value in writes:
        if action == "remove":
            seen.remove(key)
            unseen.remove(key)
            assert unseen.snapshot() == seen.snapshot()
            continue
        try:
            seen.put(key, value)
        except TypeError as exc:
            refused = str(exc)
        else:
            refused = ""
        try:
            unseen.put_unseen(key, value)
        except TypeError as exc:
            assert str(exc) == refused
        else:
            assert not refused
        assert unseen.snapshot() == seen.snapshot()
        assert unseen.keys() == seen.keys()  # (write order: a bounded lane evicts by it)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6)), max_size=30))
def test_an_eviction_no_replica_follows_leaves_the_entries_a_remove_does_and_no_tombstone(
    writes: list[tuple[bool, int]],
) -> None:
    """A bounded lane that no link follows evicts with ``evict`` (an op for its sinks)
    or ``forget`` (nothing follows): the entries, their order and the op are a
    remove's, and no tombstone is left, however many keys go."""
    removed, evicted, forgotten = (LWWMap("r", HybridLogicalClock(FakeWall(5))) for _ in range(3))
    for place, (is_put, key) in enumerate(writes):
        if is_put:
            for replica in (removed, evicted, forgotten):
                replica.put_unseen(key, place)
        elif key in removed:
            assert evicted.evict(key) == removed.remove(key)  # (the clocks move alike)
            forgotten.forget(key)
        assert evicted.items() == forgotten.items() == removed.items()
        assert evicted.keys() == forgotten.keys() == removed.keys()  # (the next eviction's)
        assert evicted.tombstone_count == forgotten.tombstone_count == 0
    # What a link opened now syncs (the owner's snapshot) holds the same entries.
    synced = LWWMap.from_snapshot(forgotten.snapshot(), "s")
    assert synced.to_dict() == removed.to_dict()

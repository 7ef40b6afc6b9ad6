from collections.abc import Callable

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import (
    FORMAT_VERSION,
    CounterAdd,
    CounterSnapshot,
    LWWRegister,
    MapClear,
    MapPut,
    MapRemove,
    MapSnapshot,
    PNCounter,
    RegisterSet,
    RegisterSnapshot,
    check_storable,
    decode,
    encode,
    encode_counter,
    encode_register,
)
from swimstream.crdt.codec import pack_exact
from swimstream.errors import CodecError, SwimstreamError
from tests.crdt.replication import json_values, map_keys

stamps = st.tuples(st.integers(0, 2**63 - 1), st.text(max_size=12))
totals = st.integers(0, 2**62)
codec_keys = map_keys | st.none() | st.booleans() | st.floats(allow_nan=False) | st.text()
"""Every type a map key may have (``KEY_TYPES``), ``True`` and ``1.0`` beside ``1``."""

ops_and_snapshots = st.one_of(
    st.builds(RegisterSet, stamps, json_values),
    st.builds(MapPut, stamps, codec_keys, json_values),
    st.builds(MapRemove, stamps, codec_keys),
    st.builds(MapClear, stamps),
    st.builds(CounterAdd, stamps, st.integers(-(2**62), 2**62), totals, totals),
    st.builds(RegisterSnapshot, stamps, json_values),
    st.builds(
        MapSnapshot,
        st.lists(st.tuples(codec_keys, stamps, json_values), max_size=5).map(tuple),
        st.lists(st.tuples(codec_keys, stamps), max_size=5).map(tuple),
        stamps,
        st.integers(0, 2**62),
    ),
    st.builds(
        CounterSnapshot,
        st.lists(st.tuples(st.text(max_size=6), totals, totals), max_size=5).map(tuple),
    ),
)


@given(ops_and_snapshots)
def test_every_op_and_snapshot_round_trips(item: object) -> None:
    data = encode(item)  # type: ignore[arg-type]
    assert data[0] == FORMAT_VERSION
    assert decode(data) == item
    # Type for type too: ``==`` takes True for 1 and 1.0, and -0.0 for 0.0.
    assert typed(decode(data)) == typed(item)
    assert encode(decode(data)) == data


def typed(value: object) -> object:
    """``value`` with the type (and the exact spelling) of every part made explicit."""
    if isinstance(value, list | tuple):
        return type(value).__name__, [typed(part) for part in value]
    if isinstance(value, dict):
        return "dict", sorted(((typed(k), typed(v)) for k, v in value.items()), key=repr)
    return type(value).__name__, repr(value)


@given(ops_and_snapshots, st.data())
def test_truncated_encodings_raise_the_library_error(item: object, data: st.DataObject) -> None:
    encoded = encode(item)  # type: ignore[arg-type]
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(CodecError):
        decode(encoded[:cut])


@given(st.binary(max_size=64))
def test_random_bytes_decode_or_raise_only_the_library_error(garbage: bytes) -> None:
    try:
        result = decode(garbage)
    except SwimstreamError as exc:
        assert isinstance(exc, CodecError)
    else:  # rarely, garbage is a valid encoding; then it must round-trip
        assert decode(encode(result)) == result


@pytest.mark.parametrize(
    "payload",
    [
        [1, -5, "r", 1],  # negative timestamp
        [1, 5, 7, 1],  # replica id not text
        [2, 5, "r", [1, 2], 3],  # unhashable key
        [2, 5, "r", "k"],  # missing field
        [5, 5, "r", 1, -1, 0],  # negative total
        [99, 5, "r"],  # unknown tag
        [16, 1, "r", b"raw-bytes"],  # bytes are not a JSON value
        [17, 0, "", 0, "not-a-list", []],
        "not-an-array",
    ],
)
def test_well_formed_msgpack_of_the_wrong_shape_is_rejected(payload: object) -> None:
    with pytest.raises(CodecError):
        decode(bytes([FORMAT_VERSION]) + msgpack.packb(payload, use_bin_type=True))


values_keyed_by_scalars = st.recursive(
    json_values,
    lambda inner: st.dictionaries(codec_keys, inner, max_size=3),
    max_leaves=8,
)


@given(stamps, values_keyed_by_scalars)
def test_values_whose_objects_have_number_or_other_scalar_keys_round_trip(
    stamp: tuple[int, str], value: object
) -> None:
    """``{13: 1}`` in a value lane: stored as it is, it must load as it is (a decode
    that refused it left the agent unloadable after its first passivation)."""
    snapshot = RegisterSnapshot(stamp, value)
    assert decode(encode(snapshot)) == snapshot


python_values = st.recursive(
    json_values | st.binary(max_size=3) | st.integers(),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(codec_keys | st.tuples(codec_keys, codec_keys), inner, max_size=3)
    ),
    max_leaves=8,
)
"""What a lane may be given in Python: tuples too, and as keys (``{(1, 2): 5}``), bytes,
integers of any size."""


@given(stamps, codec_keys, python_values)
def test_what_a_lane_takes_round_trips_and_what_it_refuses_is_refused_when_encoded(
    stamp: tuple[int, str], key: object, value: object
) -> None:
    """``check_storable`` is what lanes take: such a value must come back from the
    store (a tuple as a list), and any other must be refused by the encoder too, never
    stored to make its agent unloadable (a tuple key and bytes were)."""
    register = LWWRegister.from_snapshot(RegisterSnapshot(stamp, value), "here")
    encodings: list[Callable[[], bytes]] = [
        lambda: encode_register(register),
        lambda: encode(RegisterSnapshot(stamp, value)),
        lambda: encode(MapPut(stamp, key, value)),  # type: ignore[arg-type]
    ]
    try:
        check_storable(value)
    except TypeError:
        for encoding in encodings:
            with pytest.raises(CodecError):
                encoding()
        return
    as_read = as_lists(value)
    assert decode(encodings[0]()) == RegisterSnapshot(stamp, as_read)
    assert decode(encodings[1]()) == RegisterSnapshot(stamp, as_read)
    assert decode(encodings[2]()) == MapPut(stamp, key, as_read)  # type: ignore[arg-type]


@given(python_values)
def test_the_exact_packer_packs_as_msgpack_does_or_refuses(value: object) -> None:
    """Encoders try ``pack_exact`` first and take its bytes: they must be msgpack's own,
    and whatever it refuses it refuses with TypeError, which sends them to msgpack's
    packer (a tuple, as a lane may hold, must still be stored as a list)."""
    packed = msgpack.packb(value, use_bin_type=True) if _packable(value) else None
    try:
        exact = pack_exact(value)
    except TypeError:
        return
    except (ValueError, OverflowError):
        assert packed is None
        return
    assert exact == packed


def _packable(value: object) -> bool:
    try:
        msgpack.packb(value, use_bin_type=True)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def as_lists(value: object) -> object:
    """``value`` as the store gives it back: tuples are lists."""
    if isinstance(value, list | tuple):
        return [as_lists(element) for element in value]
    if isinstance(value, dict):
        return {key: as_lists(element) for key, element in value.items()}
    return value


def test_an_unknown_version_is_named() -> None:
    with pytest.raises(CodecError, match="version 9"):
        decode(b"\x09" + msgpack.packb([1, 0, "r", None]))


def test_encoding_something_else_is_refused() -> None:
    with pytest.raises(CodecError):
        encode("not an op")  # type: ignore[arg-type]


@given(stamps, json_values)
def test_a_register_encodes_directly_as_its_snapshot_would(
    stamp: tuple[int, str], value: object
) -> None:
    register = LWWRegister.from_snapshot(RegisterSnapshot(stamp, value), "here")
    assert encode_register(register) == encode(register.snapshot())


@given(st.lists(st.tuples(st.text(max_size=6), totals, totals), max_size=5))
def test_a_counter_encodes_directly_as_its_snapshot_would(
    replicas: list[tuple[str, int, int]],
) -> None:
    counter = PNCounter.from_snapshot(CounterSnapshot(tuple(replicas)), "here")
    assert encode_counter(counter) == encode(counter.snapshot())


@given(st.text(max_size=80) | st.sampled_from(["\ud800", "a\udfffb"]), st.integers(0, 2**66))
def test_a_counter_of_one_replica_encodes_or_refuses_as_its_snapshot_would(
    replica: str, total: int
) -> None:
    """Its encoding starts with bytes kept per replica: any replica id (a lone
    surrogate too) and any total must give the snapshot's bytes or its refusal."""
    counter = PNCounter.from_snapshot(CounterSnapshot(((replica, total, 0),)), "here")
    try:
        expected = encode(counter.snapshot())
    except CodecError:
        with pytest.raises(CodecError):
            encode_counter(counter)
        return
    assert encode_counter(counter) == expected
    assert encode_counter(counter) == expected  # (the second from the kept bytes)


@given(st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=5))
def test_a_counter_one_writer_only_added_to_encodes_as_its_snapshot_would(
    deltas: list[int],
) -> None:
    counter = PNCounter("here")
    for delta in deltas:
        counter.add(delta)
    assert encode_counter(counter) == encode(counter.snapshot())


def test_direct_encodings_refuse_what_msgpack_cannot_hold() -> None:
    with pytest.raises(CodecError, match="RegisterSnapshot"):
        encode_register(LWWRegister("here", 2**70))
    counter = PNCounter("here")  # (an add refuses such totals: only a merge takes them)
    counter.merge(CounterSnapshot((("there", 2**65, 0),)))
    with pytest.raises(CodecError, match="CounterSnapshot"):
        encode_counter(counter)


def nested(depth: int) -> object:
    value: object = 1
    for level in range(depth):
        value = [value] if level % 2 else {"x": value}
    return value


@pytest.mark.parametrize("depth", [70, 300, 1000])
def test_whatever_nesting_encodes_decodes(depth: int) -> None:
    """A value the store wrote but could not read back was lost when its agent loaded
    (the decoder stopped at 64 levels; msgpack packs up to 1,024)."""
    register = LWWRegister("here")
    register.set(nested(depth))
    stored = encode(register.snapshot())
    assert encode(decode(stored)) == stored  # (== on the values recurses past Python's limit)


def test_nesting_beyond_what_lanes_take_is_refused_when_written() -> None:
    register = LWWRegister("here")
    register.set(nested(2000))
    with pytest.raises(CodecError, match="nested over 1000 levels"):
        encode(register.snapshot())

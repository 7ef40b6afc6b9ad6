"""Map lanes stored entry by entry reassemble to the same visible state."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from swimstream.crdt import (
    LWWMap,
    LWWRegister,
    MapSnapshot,
    RegisterSnapshot,
    decode_snapshot,
    encode_register,
)
from swimstream.errors import CodecError
from swimstream.store.entries import assemble, encode_entry, encode_header, entry_name, split_name

keys = st.integers(-5, 5) | st.sampled_from(["a", "b:c", 'q"uote', "", True, False, 1.0, -0.0, 2.5])
actions = st.lists(
    st.tuples(
        st.sampled_from(["put", "put", "remove", "clear"]), keys, st.integers(-(2**63), 2**63 - 1)
    ),
    max_size=40,
)


@given(actions)
def test_rows_of_a_map_reassemble_to_its_visible_state(
    script: list[tuple[str, object, int]],
) -> None:
    state = LWWMap("w")
    rows: dict[str, bytes] = {}
    for action, key, value in script:
        if action == "put":
            state.put(key, value)  # type: ignore[arg-type]
        elif action == "remove":
            state.remove(key)  # type: ignore[arg-type]
        else:
            state.clear()
            rows["history"] = encode_header(state)  # a clear rewrites the header
        stored = encode_entry(state, key)  # type: ignore[arg-type]
        if stored is None:
            rows.pop(entry_name("history", key), None)  # type: ignore[arg-type]
        else:
            rows[entry_name("history", key)] = stored  # type: ignore[arg-type]
    assembled = assemble(rows)
    if not state.to_dict() and "history" not in assembled:
        return
    snapshot = decode_snapshot(assembled["history"])
    assert isinstance(snapshot, MapSnapshot)
    assert typed(LWWMap.from_snapshot(snapshot, "r").to_dict()) == typed(state.to_dict())


def typed(entries: Mapping[Any, Any]) -> list[tuple[str, str, Any]]:
    """The entries with their keys' types: ``{1: v}`` and ``{True: v}`` compare equal."""
    return sorted((type(key).__name__, repr(key), value) for key, value in entries.items())


def test_a_key_written_as_another_type_of_an_equal_value_is_one_row() -> None:
    """Removing ``True`` removes what ``1`` wrote: a row left under ``1`` came back."""
    state = LWWMap("w")
    rows: dict[str, bytes] = {}
    for action, key in (("put", 1), ("put", True), ("remove", True), ("put", 2.0), ("put", 2)):
        if action == "put":
            state.put(key, action)
        else:
            state.remove(key)
        stored = encode_entry(state, key)
        if stored is None:
            rows.pop(entry_name("h", key), None)
        else:
            rows[entry_name("h", key)] = stored
    assert sorted(rows) == ["h:2"]
    snapshot = decode_snapshot(assemble(rows)["h"])
    assert isinstance(snapshot, MapSnapshot)
    assert typed(LWWMap.from_snapshot(snapshot, "r").to_dict()) == [("int", "2", "put")]
    state.put(3.0, "f")  # a whole float keeps its type, named as the integer
    stored = encode_entry(state, 3.0)
    assert stored is not None
    rows = {entry_name("h", 3.0): stored}
    assert sorted(rows) == ["h:3"]
    snapshot = decode_snapshot(assemble(rows)["h"])
    assert isinstance(snapshot, MapSnapshot)
    assert typed(LWWMap.from_snapshot(snapshot, "r").to_dict()) == [("float", "3.0", "f")]


def test_entry_names_keep_the_key_type_and_survive_separators_in_keys() -> None:
    assert split_name(entry_name("history", 17)) == ("history", 17)
    assert split_name(entry_name("tags", "a:b")) == ("tags", "a:b")
    assert split_name("status") is None


map_keys = st.text() | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.none()


@given(st.text(alphabet="abc_"), map_keys)
def test_an_entry_name_is_the_lane_and_the_json_of_its_key_and_splits_back(
    lane: str, key: str | int | float | bool | None
) -> None:
    name = entry_name(lane, key)
    if isinstance(key, bool | float) and float(key).is_integer() and -(2**63) <= key < 2**64:
        assert name == f"{lane}:{int(key)}"  # one name for equal keys (1, 1.0, True)
    else:
        assert name == f"{lane}:{json.dumps(key, separators=(',', ':'))}"
    assert split_name(name) == (lane, key)


shared_values = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=4) | st.integers(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
"""Values a value lane and a join of it may share (integers of any size: some are not
storable)."""


@given(st.lists(shared_values, min_size=1, max_size=4), st.integers(0, 2**63 - 1))
def test_values_checked_once_per_batch_encode_as_when_checked_each_time(
    values: list[Any], ts: int
) -> None:
    """A checkpoint checks an object once (``checked``) when a value lane and a join
    lane hold it both: the bytes must be those of a check each time, and a value that
    cannot be stored must be refused by every encoding of it, not only the first."""
    checked: dict[int, Any] = {}
    joined = LWWMap("here")
    for index, value in enumerate(values):
        register = LWWRegister.from_snapshot(RegisterSnapshot((ts, "here"), value), "here")
        key = f"/device/{index}"
        joined.put(key, value)
        assert _outcome(encode_register, register, checked) == _outcome(encode_register, register)
        assert _outcome(encode_entry, joined, key, checked) == _outcome(encode_entry, joined, key)


def _outcome(encoding: Callable[..., bytes | None], *args: Any) -> bytes | str | None:
    """What an encoding gives: its bytes, or that it refused."""
    try:
        return encoding(*args)
    except CodecError:
        return "refused"

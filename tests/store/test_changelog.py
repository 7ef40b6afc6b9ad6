"""The changelog's record format reads back what was written, whatever names hold."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from swimstream.routing import RoutePattern
from swimstream.runtime.agent_record import LINKS, TIMERS
from swimstream.store.changelog import (
    Marker,
    cut_key,
    entry_key,
    marker_value,
    parse_cut_key,
    parse_key,
    read_marker,
)
from swimstream.store.entries import entry_name
from tests.routing.strategies import param_values

# Keys made of the separators every layer uses ('#', ':', '/', '"', '%'), and any others.
map_keys = st.text(alphabet='ab#:/"%') | st.text() | st.integers() | st.floats(allow_nan=False)
lane_names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
names = (
    lane_names
    | st.sampled_from([LINKS, TIMERS])
    | st.builds(entry_name, lane_names, map_keys)  # map entries: any key, '#' included
)


@given(param_values, names)
def test_a_changelog_key_splits_back_into_its_node_uri_and_name(param: str, name: str) -> None:
    node = RoutePattern.parse("/device/:id").render({"id": param})
    assert parse_key(entry_key(node, name)) == (node, name)


@given(
    st.integers(0, 2**62),
    st.dictionaries(st.from_regex(r"[a-z.]{1,8}/[0-9]{1,3}", fullmatch=True), st.integers(0)),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.text(),
)
def test_a_marker_reads_back_as_written(
    checkpoint: int, sources: dict[str, int], restored_from: int, first: int, instance: str
) -> None:
    marker = Marker(checkpoint, sources, restored_from, first, instance)
    assert read_marker(marker_value(marker)) == marker


@given(
    st.sampled_from(["readings", "a.b-c_d", "persistent://public/default/readings"]),
    st.integers(0, 10_000),
)
def test_a_cut_key_names_its_topic_and_partition(topic: str, partition: int) -> None:
    assert parse_cut_key(cut_key(topic, partition)) == (topic, partition)

"""A name whose changelog record would pass the producer's size limit is not stored.

Produced, it failed the checkpoint, which stopped the instance; the restart replayed the
record that made it, and stopped again, at every start. One record under the source's
size limit is enough: kept as a map entry under a key of its own text, its text is in
the changelog record twice (``self.seen[event["id"]] = event`` with a 600 KB id).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, MapLane, ValueLane
from swimstream.store.changelog import entry_key
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.tracker import StateTracker
from swimstream.testing import open_plane

LARGEST = 10_000


class Keeper(Agent):
    """Keeps each event whole, in a value lane and as a map entry under its id."""

    last = ValueLane[Any](default=None)
    seen = MapLane[str, Any]()
    keep = CommandLane[dict[str, Any]]()

    @keep.on_command
    def on_keep(self, event: dict[str, Any]) -> None:
        self.last.set(event)
        self.seen[event["id"]] = event


async def collected(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """The changelog records a checkpoint of ``events`` makes, by (node, name): size."""
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/keeper/:id": Keeper}, store=store) as plane:
        tracker = StateTracker(store, lambda _node: 0, LARGEST)
        tracker.attach(plane)
        for event in events:
            await plane.command("/keeper/k", "keep", event)
        await plane.settle()
        entries = tracker.collect()
        assert plane.failures.count == 0
    return {
        (node, name): len(entry_key(node, name)) + len(value or b"")
        for node, name, value, _ in entries
    }


def test_a_map_entry_too_large_for_the_changelog_is_left_out_and_the_rest_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    big = "x" * 6_000  # the event fits the limit; its entry, keyed by its text, does not
    with caplog.at_level(logging.ERROR, logger="swimstream.store"):
        sizes = asyncio.run(collected([{"id": big}, {"id": "small"}]))
    assert set(sizes) == {("/keeper/k", "last"), ("/keeper/k", 'seen:"small"')}
    assert all(size <= LARGEST for size in sizes.values())
    (line,) = [r.getMessage() for r in caplog.records if "is not stored" in r.getMessage()]
    assert line.startswith(f'/keeper/k seen:"{big[:10]}')
    assert len(line) < 1_000  # not the key whole: a line per checkpoint
    assert "its changelog record would be 12,0" in line and "over the 10,000" in line


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 9_000), st.integers(0, 9_000)), min_size=1, max_size=4))
def test_a_checkpoint_holds_every_name_that_fits_and_only_those(
    events: list[tuple[int, int]],
) -> None:
    """Each name is collected exactly when its record (key and value) fits the limit."""
    keyed = [{"id": str(n) * key, "pad": "p" * pad} for n, (key, pad) in enumerate(events)]
    sizes = asyncio.run(collected(keyed))
    assert all(size <= LARGEST for size in sizes.values())
    unlimited_sizes = asyncio.run(unlimited(keyed))
    assert sizes == {name: s for name, s in unlimited_sizes.items() if s <= LARGEST}


async def unlimited(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/keeper/:id": Keeper}, store=store) as plane:
        tracker = StateTracker(store, lambda _node: 0)
        tracker.attach(plane)
        for event in events:
            await plane.command("/keeper/k", "keep", event)
        await plane.settle()
        entries = tracker.collect()
    return {
        (node, name): len(entry_key(node, name)) + len(value or b"")
        for node, name, value, _ in entries
    }

"""The changelog tail recovery holds until its checkpoints are judged: in memory, each
name spelt once, or spilled to a temporary file past a limit (``store.held_tail``)."""

from __future__ import annotations

import asyncio
import gc
import logging
import sqlite3
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from swimstream.store.changelog import (
    ChangelogEntry,
    ChangelogRow,
    Marker,
    entry_key,
    headers,
    marker_key,
    marker_value,
)
from swimstream.store.committed import MemoryCommitted
from swimstream.store.recovery import RestoreStopped, recover
from swimstream.store.sqlite import Keep, ShardPosition, SQLiteStore
from swimstream.streams import TopicPartition
from tests.store.test_recovery import ListReader, changelog_record, checkpoint, status, value

pytestmark = pytest.mark.usefixtures("held_tail_kept")


class KeptEntries(MemoryCommitted):
    """Committed state that keeps the entries recovery wrote, as recovery made them."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[ChangelogEntry] = []

    async def write_async(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        self.written.extend(ChangelogEntry(*entry) for entry in entries)  # (same strings)
        await super().write_async(entries, positions, keep)


def test_the_tail_held_until_judged_spells_each_node_and_lane_name_once() -> None:
    """A tail of millions of records is held whole while its checkpoints are judged: a
    string per record for a node URI or a lane's name was a third of its memory."""
    records = [
        changelog_record(
            0,
            offset,
            entry_key(node, name),
            value(f"{node} {name}"),
            headers(1, {"readings/0": 10}, None),
        )
        for offset, (node, name) in enumerate(
            (node, name)
            for node in ("/a/1", "/a/2")
            for name in ("status", "count", "entries#key%231", "entries#key%232")
        )
    ]
    records.append(
        changelog_record(0, 8, marker_key(""), marker_value(Marker(1, {"readings/0": 10}, 0, 1)))
    )
    committed = KeptEntries()
    reader = ListReader(records, {TopicPartition("readings", 0): 10}, batch=3)
    in_memory = 1_000  # (spilled, the entries come back from the file: none shared)
    asyncio.run(
        recover(committed, reader, "app.changelog", 1, reader.committed, spill_after=in_memory)
    )
    assert len(committed.written) == 8
    by_node: dict[str, list[ChangelogEntry]] = {}
    for entry in committed.written:
        by_node.setdefault(entry.node_uri, []).append(entry)
    for entries in by_node.values():
        assert all(entry.node_uri is entries[0].node_uri for entry in entries)
    lane_names = [entry.name for entry in committed.written if entry.name == "status"]
    assert len(lane_names) == 2 and lane_names[0] is lane_names[1]
    assert {status(committed, node, "count") for node in by_node} == {"/a/1 count", "/a/2 count"}


def test_a_store_rebuilt_from_two_partitions_keeps_each_entry_under_its_shard(
    tmp_path: Path,
) -> None:
    offsets = {TopicPartition("readings", 0): 100, TopicPartition("readings", 1): 100}
    records = checkpoint(0, 0, 1, 100, {"/a/1": "one", "/a/3": "three"}, marker=True) + checkpoint(
        1, 0, 1, 100, {"/a/2": "two"}, marker=True, partition_source=1
    )
    store = SQLiteStore(tmp_path / "state.sqlite3").open()
    try:
        asyncio.run(recover(store, ListReader(records, offsets), "app.changelog", 2, offsets))
        assert {node: status(store, node) for node in ("/a/1", "/a/2", "/a/3")} == {
            "/a/1": "one",
            "/a/2": "two",
            "/a/3": "three",
        }
    finally:
        store.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        rows = db.execute("SELECT node, shard FROM state ORDER BY node").fetchall()
    assert rows == [("/a/1", 0), ("/a/2", 1), ("/a/3", 0)]


def test_a_spilled_tail_is_logged_and_its_file_removed_however_the_restore_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Past the limit the tail goes to a file that may be gigabytes: a stop mid-read
    raises past the restore's end, and must not leave it behind."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    records = checkpoint(0, 0, 1, 100, {f"/a/{n}": f"v{n}" for n in range(6)}, marker=True)
    sources = {TopicPartition("readings", 0): 100}
    committed = MemoryCommitted()
    with pytest.raises(RestoreStopped):
        reader = ListReader(records, sources, batch=4)
        asked = iter([False, True])
        stopping = lambda: next(asked, True)  # noqa: E731 (stops before the second batch)
        asyncio.run(
            recover(committed, reader, "app.changelog", 1, sources, stopping, spill_after=2)
        )
    gc.collect()
    assert list(tmp_path.iterdir()) == []
    with caplog.at_level(logging.INFO, logger="swimstream.recovery"):
        report = asyncio.run(
            recover(
                committed, ListReader(records, sources), "app.changelog", 1, sources, spill_after=2
            )
        )
    assert report.applied_checkpoints == 1 and status(committed, "/a/5") == "v5"
    assert list(tmp_path.iterdir()) == []
    [spilled] = [r for r in caplog.records if "more than 2 changelog records" in r.getMessage()]
    assert str(tmp_path) in spilled.getMessage()


def test_a_tail_restored_into_the_local_store_spills_beside_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The store's volume is sized for the state; a container's temporary directory,
    where a rebuild's gigabytes would otherwise go, may not be."""
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    records = checkpoint(0, 0, 1, 100, {f"/a/{n}": f"v{n}" for n in range(6)}, marker=True)
    sources = {TopicPartition("readings", 0): 100}
    store = SQLiteStore(tmp_path / "store" / "state.sqlite3").open()
    try:
        with caplog.at_level(logging.INFO, logger="swimstream.recovery"):
            reader = ListReader(records, sources)
            asyncio.run(recover(store, reader, "app.changelog", 1, sources, spill_after=2))
        assert status(store, "/a/5") == "v5"
    finally:
        store.close()
    [spilled] = [r for r in caplog.records if "more than 2 changelog records" in r.getMessage()]
    assert str(tmp_path / "store" / "swimstream-restore-") in spilled.getMessage()
    assert sorted(p.name for p in (tmp_path / "store").iterdir()) == ["state.sqlite3"]
    assert list(elsewhere.iterdir()) == []

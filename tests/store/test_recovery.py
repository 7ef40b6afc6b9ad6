"""Recovery applies committed checkpoints only, and the tracker captures every change."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence

import pytest

from swimstream import Agent, CommandLane, MapLane, ValueLane
from swimstream.crdt import (
    LWWMap,
    LWWRegister,
    MapSnapshot,
    RegisterSnapshot,
    decode_snapshot,
    encode,
)
from swimstream.runtime.agent_record import LINKS
from swimstream.store import recovery
from swimstream.store.changelog import (
    MARKER_KEY,
    Marker,
    entry_key,
    headers,
    marker_key,
    marker_value,
)
from swimstream.store.committed import CommittedStore, MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.entries import assemble, encode_entry, entry_name
from swimstream.store.recovery import RecoveryReport, RestoreStopped, recover
from swimstream.store.tracker import StateTracker
from swimstream.streams import InboundRecord, TopicPartition
from swimstream.testing import MemoryRecord, open_plane

pytestmark = pytest.mark.usefixtures("held_tail_kept")


def changelog_record(
    partition: int,
    offset: int,
    key: bytes,
    value: bytes | None,
    record_headers: list[tuple[str, bytes]] | None = None,
) -> MemoryRecord:
    """A changelog record as a consumer hands it over (test data)."""
    return MemoryRecord("app.changelog", partition, offset, key, value, record_headers or [])


class ListReader:
    """A changelog reader over records in memory (the Kafka one runs in integration/)."""

    def __init__(
        self,
        records: list[MemoryRecord],
        committed: dict[TopicPartition, int],
        batch: int | None = None,
    ) -> None:
        self.records = records
        self.committed = committed
        self.batch = batch

    async def read(
        self,
        topic: str,
        start: Mapping[int, int],
        on_records: Callable[[Sequence[InboundRecord]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, int]:
        tail = [
            r for r in self.records if r.partition() in start and r.offset() >= start[r.partition()]
        ]
        size = self.batch or max(len(tail), 1)
        for first in range(0, len(tail), size):
            on_records(tail[first : first + size])
        return {}

    async def committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        return self.committed


def value(text: str) -> bytes:
    register = LWWRegister("w")
    register.set(text)
    return encode(register.snapshot())


def checkpoint(
    partition: int,
    first: int,
    number: int,
    source: int,
    values: dict[str, str],
    marker: bool,
    lineage: tuple[int, int] = (0, 1),
    instance: str = "",
    partition_source: int = 0,
    writer: bool = False,
) -> list[MemoryRecord]:
    """Records of one checkpoint; ``writer``: they restate its marker, as they do since
    compaction was found to remove markers (records from before do not)."""
    sources = {f"readings/{partition_source}": source}
    closing = Marker(number, sources, *lineage, instance=instance)
    record_headers = headers(number, sources, closing if writer else None)
    records = [
        changelog_record(
            partition, first + i, entry_key(node, "status"), value(text), record_headers
        )
        for i, (node, text) in enumerate(values.items())
    ]
    if marker:
        records.append(
            changelog_record(
                partition, first + len(records), marker_key(instance), marker_value(closing)
            )
        )
    return records


def compacted(records: list[MemoryRecord]) -> list[MemoryRecord]:
    """What log compaction leaves: the newest record of each key in each partition."""
    newest = {(r.partition(), r.key()): r.offset() for r in records}
    return [r for r in records if newest[r.partition(), r.key()] == r.offset()]


def restored(
    records: list[MemoryRecord], offsets: dict[TopicPartition, int]
) -> tuple[MemoryCommitted, RecoveryReport]:
    """A fresh store recovered from ``records``, the sources having committed ``offsets``."""
    committed = MemoryCommitted()
    report = asyncio.run(
        recover(committed, ListReader(records, offsets), "app.changelog", 1, offsets)
    )
    return committed, report


def status(committed: CommittedStore, node: str, lane: str = "status") -> object:
    """The value of a value lane of ``node`` in ``committed``."""
    stored = committed.load(node)
    assert stored is not None
    snapshot = decode_snapshot(stored[lane])
    assert isinstance(snapshot, RegisterSnapshot)
    return snapshot.value


def test_only_checkpoints_the_sources_committed_are_applied() -> None:
    records = (
        checkpoint(0, 0, 1, 100, {"/a/1": "one", "/a/2": "two"}, marker=True)
        + checkpoint(0, 3, 2, 250, {"/a/1": "ahead"}, marker=True)  # offsets never committed
        + checkpoint(0, 5, 3, 300, {"/a/2": "cut"}, marker=False)  # crash before the marker
    )
    committed = MemoryCommitted()
    reader = ListReader(records, {TopicPartition("readings", 0): 100})
    report = asyncio.run(recover(committed, reader, "app.changelog", 1, reader.committed))
    assert {node: status(committed, node) for node in ("/a/1", "/a/2")} == {
        "/a/1": "one",
        "/a/2": "two",
    }
    assert report.applied_checkpoints == 1 and report.skipped_checkpoints == [2]
    assert report.skipped_records == 2 and report.committed_through == 1
    # Checkpoint 2 may yet commit (another instance's, in flight on a broker that shows
    # open transactions): the next read starts at its first record again.
    assert committed.positions()[0].changelog_offset == 3
    # The cut the store's state is of: checkpoint 1's, not the skipped marker's (a start
    # takes a store whose cut the sources never committed for one ahead of them).
    assert committed.positions()[0].sources == {"readings/0": 100}


def test_a_checkpoint_committed_after_one_read_is_applied_by_the_next() -> None:
    """Instance A's checkpoint 2 was in flight when B read the changelog at its start;
    A committed it a moment later. B's next read (taking a shard over) must apply it:
    the sources resume past its cut."""
    records = checkpoint(0, 0, 1, 100, {"/a/1": "one"}, marker=True) + checkpoint(
        0, 2, 2, 250, {"/a/1": "two"}, marker=True
    )
    committed = MemoryCommitted()
    early = ListReader(records, {TopicPartition("readings", 0): 100})
    asyncio.run(recover(committed, early, "app.changelog", 1, early.committed))
    assert status(committed, "/a/1") == "one"
    late = ListReader(records, {TopicPartition("readings", 0): 250})
    report = asyncio.run(recover(committed, late, "app.changelog", 1, late.committed))
    assert status(committed, "/a/1") == "two"
    assert report.cuts == {0: {"readings/0": 250}}
    assert committed.positions()[0].changelog_offset == 4


def test_a_checkpoint_a_later_incarnation_says_was_cut_short_is_read_no_more() -> None:
    records = checkpoint(0, 0, 2, 250, {"/a/1": "lost"}, marker=True, lineage=(0, 1)) + (
        checkpoint(0, 2, 5, 100, {"/a/1": "five"}, marker=True, lineage=(1, 5))
    )
    committed, report = restored(records, {TopicPartition("readings", 0): 100})
    assert status(committed, "/a/1") == "five" and report.skipped_checkpoints == [2]
    assert committed.positions()[0].changelog_offset == 4


def test_a_compacted_changelog_restores_every_committed_checkpoint() -> None:
    """All markers share a key, so compaction keeps a partition's newest one only: the
    checkpoints before it are judged by what their records restate."""
    records = (
        checkpoint(0, 0, 1, 100, {"/a/1": "one", "/a/2": "two"}, marker=True, writer=True)
        + checkpoint(0, 3, 2, 200, {"/a/3": "three"}, marker=True, writer=True)
        + checkpoint(0, 5, 3, 300, {"/a/1": "one again"}, marker=True, writer=True)
    )
    left = compacted(records)
    assert sum(r.key() == MARKER_KEY for r in left) == 1
    committed, report = restored(left, {TopicPartition("readings", 0): 300})
    assert {node: status(committed, node) for node in ("/a/1", "/a/2", "/a/3")} == {
        "/a/1": "one again",
        "/a/2": "two",
        "/a/3": "three",
    }
    assert report.skipped_records == 0 and report.committed_through == 3
    assert report.cuts == {0: {"readings/0": 300}}


def test_after_compaction_checkpoints_cut_short_or_still_open_stay_out() -> None:
    """Incarnation (0, 1) of the instance committed checkpoint 1, crashed in checkpoint 2
    (no marker; its offsets were committed later by the next incarnation, 5), and
    checkpoint 6 is still open after the last marker."""
    records = (
        checkpoint(0, 0, 1, 100, {"/a/1": "one"}, marker=True, writer=True)
        + checkpoint(0, 2, 2, 250, {"/a/2": "lost"}, marker=False, writer=True)
        + checkpoint(0, 3, 5, 300, {"/a/3": "five"}, marker=True, lineage=(1, 5), writer=True)
        + checkpoint(0, 5, 6, 400, {"/a/4": "open"}, marker=False, lineage=(1, 5), writer=True)
    )
    committed, report = restored(compacted(records), {TopicPartition("readings", 0): 400})
    assert {node: status(committed, node) for node in ("/a/1", "/a/3")} == {
        "/a/1": "one",
        "/a/3": "five",
    }
    assert committed.load("/a/2") is None and committed.load("/a/4") is None
    assert report.skipped_records == 2 and report.skipped_checkpoints == [2]
    # Another instance's marker after them all: checkpoint 5's goes too, and only its
    # records still say that incarnation 5 began after checkpoint 2 was cut short.
    later = checkpoint(0, 6, 50, 0, {"/b/1": "b"}, marker=True, lineage=(0, 50), instance="b")
    committed, report = restored(
        compacted(records[:5] + later), {TopicPartition("readings", 0): 400}
    )
    assert sum(r.key() == MARKER_KEY for r in compacted(records[:5] + later)) == 1
    assert status(committed, "/a/3") == "five" and committed.load("/a/2") is None


def test_a_checkpoint_whose_marker_was_compacted_is_applied_in_its_place_in_the_log() -> None:
    """Compaction works up to the log's active segment: checkpoint 1's marker is gone
    (checkpoint 2's came after it), its record of ``/a/1`` is not (it was written again
    only in the active segment), and that later write must win."""
    first = checkpoint(0, 0, 1, 100, {"/a/1": "one"}, marker=True, writer=True)
    records = (
        first[:-1]  # the marker removed
        + checkpoint(0, 2, 2, 200, {"/a/2": "two"}, marker=True, writer=True)
        + checkpoint(0, 4, 3, 300, {"/a/1": "three"}, marker=True, writer=True)
    )
    committed, _ = restored(records, {TopicPartition("readings", 0): 300})
    assert status(committed, "/a/1") == "three" and status(committed, "/a/2") == "two"


def test_a_stop_asked_during_recovery_leaves_the_store_as_it_was() -> None:
    """SIGTERM during a long rebuild ends it at the next batch or write; the store keeps
    its old positions, so the next start reads the same tail and ends where one
    uninterrupted recovery would."""
    records = checkpoint(0, 0, 1, 100, {"/a/1": "one", "/a/2": "two"}, marker=True) + checkpoint(
        0, 3, 2, 200, {"/a/1": "later"}, marker=True
    )
    committed = MemoryCommitted()
    sources = {TopicPartition("readings", 0): 200}

    def stop_at(moment: int) -> Callable[[], bool]:
        """True from the ``moment``-th time it is asked."""
        asked = iter(range(1, moment + 1))
        return lambda: next(asked, moment) >= moment

    for moment, batch in ((2, 2), (2, None)):  # before the second batch read; before writing
        reader = ListReader(records, sources, batch=batch)
        with pytest.raises(RestoreStopped):
            asyncio.run(recover(committed, reader, "app.changelog", 1, sources, stop_at(moment)))
        assert committed.positions() == {} and committed.count() == 0
    report = asyncio.run(
        recover(committed, ListReader(records, sources, batch=2), "app.changelog", 1, sources)
    )
    assert report.applied_checkpoints == 2
    assert status(committed, "/a/1") == "later" and status(committed, "/a/2") == "two"
    assert committed.positions()[0].changelog_offset == len(records)


class ReportingReader(ListReader):
    """Reports progress as the Kafka reader does: after each batch, then once at the end."""

    async def read(
        self,
        topic: str,
        start: Mapping[int, int],
        on_records: Callable[[Sequence[InboundRecord]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, int]:
        assert progress is not None
        for done, record in enumerate(self.records, 1):
            on_records([record])
            progress(done, len(self.records))
        progress(len(self.records), len(self.records))
        return {}


def test_a_rebuild_says_how_far_its_write_is_and_reports_the_read_s_end_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After "100%" the log went quiet while the store was written (tens of seconds at a
    million agents), and the 100% line came twice. (Batches of 2 entries and no wait
    between lines stand in for a million agents.)"""
    monkeypatch.setattr(recovery, "WRITE_BATCH", 2)
    monkeypatch.setattr(recovery, "PROGRESS_EVERY", 0.0, raising=False)  # (new with the lines)
    records = checkpoint(0, 0, 1, 100, {f"/a/{n}": "v" for n in range(5)}, marker=True)
    reader = ReportingReader(records, {TopicPartition("readings", 0): 100})
    with caplog.at_level(logging.INFO, logger="swimstream.recovery"):
        asyncio.run(recover(MemoryCommitted(), reader, "app.changelog", 1, reader.committed))
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.recovery"]
    assert sum("6 of about 6 records (100%)" in line for line in lines) == 1, lines
    written = [line.split(": ", 1)[1].split(",")[0] for line in lines if "local store" in line]
    assert written == [
        "writing 5 entries to the local store",
        "2 of 5 entries written to the local store",
        "4 of 5 entries written to the local store",
    ], lines


def test_a_checkpoint_an_incarnation_never_committed_stays_out_of_a_rebuild() -> None:
    """Incarnation one writes checkpoint 2 and crashes before committing it; incarnation
    two restores from 1, replays and commits checkpoint 3 past the same offsets. A rebuild
    from the changelog alone must not take 2's value for /a/2, which 3 never rewrote
    (incarnation two reached a different state for it, here: it kept 'two')."""
    records = (
        checkpoint(0, 0, 1, 100, {"/a/1": "one", "/a/2": "two"}, marker=True)
        + checkpoint(0, 3, 2, 200, {"/a/1": "x", "/a/2": "cut short"}, marker=True)
        + checkpoint(0, 6, 3, 250, {"/a/1": "three"}, marker=True, lineage=(1, 3))
    )
    committed = MemoryCommitted()
    reader = ListReader(records, {TopicPartition("readings", 0): 250})
    report = asyncio.run(recover(committed, reader, "app.changelog", 1, reader.committed))
    assert {node: status(committed, node) for node in ("/a/1", "/a/2")} == {
        "/a/1": "three",
        "/a/2": "two",
    }
    assert report.skipped_checkpoints == [2] and report.committed_through == 3
    assert committed.positions()[0].checkpoint == 3


def test_another_instance_s_incarnation_cuts_short_none_of_this_one_s_checkpoints() -> None:
    """Two instances share the changelog, each with its source partition. B started
    (restoring from A's checkpoint 10) and took 30 as its first id; A's later checkpoints
    11 and 12 lie between, yet were committed: a restore skipped them (a restart of A lost
    their state). And B's marker of 31, read between A's records of 12 and A's marker,
    made 12 look cut short."""
    a = functools.partial(checkpoint, lineage=(0, 10), instance="a", partition_source=0)
    b = functools.partial(checkpoint, lineage=(10, 30), instance="b", partition_source=1)
    records = (
        a(0, 0, 10, 100, {"/a/1": "ten"}, marker=True)
        + b(0, 2, 30, 50, {"/b/1": "thirty"}, marker=True)
        + a(0, 4, 11, 110, {"/a/1": "eleven"}, marker=True)
        + a(0, 6, 12, 120, {"/a/2": "twelve"}, marker=False)
        + b(0, 7, 31, 60, {"/b/1": "thirty-one"}, marker=True)
        + a(0, 9, 12, 120, {}, marker=True)
    )
    offsets = {TopicPartition("readings", 0): 120, TopicPartition("readings", 1): 60}
    committed, report = restored(records, offsets)
    assert {node: status(committed, node) for node in ("/a/1", "/a/2", "/b/1")} == {
        "/a/1": "eleven",
        "/a/2": "twelve",
        "/b/1": "thirty-one",
    }
    assert report.skipped_checkpoints == [] and report.applied_checkpoints == 5


def test_two_instances_checkpoints_of_one_id_are_judged_each_by_its_own_lineage() -> None:
    """Live instances number their checkpoints on their own: A and B both committed a 5.
    A then crashed before committing its 6 and restarted from 5 with 9 as its first id:
    A's 6 is cut short; B's 6, committed, stays."""
    a = functools.partial(checkpoint, instance="a", partition_source=0)
    b = functools.partial(checkpoint, instance="b", partition_source=1)
    records = (
        a(0, 0, 5, 50, {"/a/1": "a5"}, marker=True, lineage=(0, 5))
        + b(0, 2, 5, 10, {"/b/1": "b5"}, marker=True, lineage=(0, 5))
        + a(0, 4, 6, 60, {"/a/1": "a6"}, marker=True, lineage=(0, 5))
        + b(0, 6, 6, 20, {"/b/1": "b6"}, marker=True, lineage=(0, 5))
        + a(0, 8, 9, 60, {"/a/2": "a9"}, marker=True, lineage=(5, 9))
    )
    # A's 6 reached the changelog, but its offsets were never committed: A's incarnation
    # that started at 9 committed the same offsets with state of its own.
    offsets = {TopicPartition("readings", 0): 60, TopicPartition("readings", 1): 20}
    committed, report = restored(records, offsets)
    assert {node: status(committed, node) for node in ("/a/1", "/a/2", "/b/1")} == {
        "/a/1": "a5",
        "/a/2": "a9",
        "/b/1": "b6",
    }
    assert report.skipped_checkpoints == [6]


class Counter(Agent):
    value = ValueLane[int](default=0)
    bump = CommandLane[int]()
    watch = CommandLane[str]()

    @bump.on_command
    def on_bump(self, n: int) -> None:
        self.value.set(self.value.get() + n)

    @watch.on_command
    def on_watch(self, node: str) -> None:
        self.downlink(node, "value", on_set=self.seen)

    def seen(self, new: int, old: int) -> None: ...


async def test_the_tracker_collects_each_changed_name_once_even_after_passivation() -> None:
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/counter/:id": Counter}, store=store) as plane:
        tracker = StateTracker(store, lambda node: 0)
        tracker.attach(plane)
        for _ in range(5):
            await plane.command("/counter/a", "bump", 1)
        await plane.command("/counter/b", "watch", "/counter/a")
        await plane.settle()
        assert plane.passivate("/counter/a")
        entries = {(node, name): value for node, name, value, _ in tracker.collect()}
        assert set(entries) == {("/counter/a", "value"), ("/counter/b", LINKS)}
        stored_value = entries[("/counter/a", "value")]
        assert stored_value is not None
        snapshot = decode_snapshot(stored_value)
        assert isinstance(snapshot, RegisterSnapshot) and snapshot.value == 5
        assert tracker.collect() == []
        generation = store.next_generation()
        assert store.load("/counter/a") is not None and store.overlay_size == 1
        store.written(generation)
        assert store.overlay_size == 0


class Sneaky(Agent):
    """Changes its value in place after setting it: a lane refuses an unstorable value
    as it is written, so only the store sees this one."""

    value = ValueLane[list[object]](default=[])
    bump = CommandLane[int]()

    @bump.on_command
    def on_bump(self, n: int) -> None:
        value: list[object] = [n]
        self.value.set(value)
        if n > 100:
            value.append(b"raw")


async def test_a_value_that_cannot_be_stored_is_left_out_and_the_rest_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = DurableAgentStore(MemoryCommitted())
    async with open_plane({"/counter/:id": Sneaky}, store=store) as plane:
        tracker = StateTracker(store, lambda node: 0)
        tracker.attach(plane)
        await plane.command("/counter/big", "bump", 200)
        await plane.command("/counter/small", "bump", 3)
        await plane.settle()
        entries = {(node, name) for node, name, _, _ in tracker.collect()}
    assert entries == {("/counter/small", "value")}
    assert "/counter/big value is not stored" in caplog.text


def test_a_pulsar_source_in_the_cut_does_not_discard_committed_checkpoints() -> None:
    """A Pulsar source next to a Kafka changelog: its cut is in local offsets that no
    consumer group keeps, and its messages were acknowledged once the checkpoint
    committed. A rebuild from the changelog alone must apply those checkpoints (it
    discarded all of them: the state was gone and the broker would not resend it),
    while the Kafka source's offsets are still checked."""
    sources = {"readings/0": 100, "pulsar-readings/0": 40}
    records = [
        changelog_record(0, 0, entry_key("/a/1", "status"), value("one"), headers(1, sources)),
        changelog_record(0, 1, MARKER_KEY, marker_value(Marker(1, sources, 0, 1))),
    ]
    ahead = {"readings/0": 150, "pulsar-readings/0": 60}  # Kafka offsets never committed
    records += [
        changelog_record(0, 2, entry_key("/a/1", "status"), value("ahead"), headers(2, ahead)),
        changelog_record(0, 3, MARKER_KEY, marker_value(Marker(2, ahead, 0, 1))),
    ]
    committed = MemoryCommitted()
    kafka = TopicPartition("readings", 0)
    reader = ListReader(records, {kafka: 100})
    report = asyncio.run(
        recover(committed, reader, "app.changelog", 1, reader.committed, checked={kafka})
    )
    assert status(committed, "/a/1") == "one"
    assert report.applied_checkpoints == 1 and report.skipped_checkpoints == [2]


def test_a_map_entry_whose_key_holds_a_hash_sign_is_rebuilt_under_its_own_agent() -> None:
    """A changelog key is ``<node uri>#<name>``, and a map entry's name holds its key:
    ``tags:"a#b"``. A rebuild must split at the node URI's end, which never holds a raw
    ``#``, or the entry lands under an agent ``/a/1#tags:"a`` that does not exist."""
    tags = LWWMap("w")
    tags.put("a#b", 1)
    tags.put("plain", 2)
    sources = {"readings/0": 100}
    records = [
        changelog_record(
            0,
            offset,
            entry_key("/a/1", entry_name("tags", key)),
            encode_entry(tags, key),
            headers(1, sources),
        )
        for offset, key in enumerate(("a#b", "plain"))
    ]
    records.append(changelog_record(0, 2, MARKER_KEY, marker_value(Marker(1, sources))))
    committed, report = restored(records, {TopicPartition("readings", 0): 100})
    assert report.applied_checkpoints == 1
    stored = committed.load("/a/1")
    assert stored is not None
    snapshot = decode_snapshot(assemble(stored)["tags"])
    assert isinstance(snapshot, MapSnapshot)
    assert LWWMap.from_snapshot(snapshot, "r").to_dict() == {"a#b": 1, "plain": 2}
    assert committed.load('/a/1#tags:"a') is None


def test_a_shard_taken_over_keeps_its_new_owner_s_writes_whatever_their_ids() -> None:
    """Shard 0 moved from A to B. A numbers its checkpoints from 900, B from 40: applied
    by id, A's older write of /d/1 would win over B's newer one; the log's order holds."""
    a = functools.partial(checkpoint, instance="a", lineage=(0, 900))
    b = functools.partial(checkpoint, instance="b", lineage=(0, 40))
    records = a(0, 0, 900, 100, {"/d/1": "a-900", "/d/2": "a-900"}, marker=True) + b(
        0, 3, 40, 150, {"/d/1": "b-40"}, marker=True
    )
    committed, report = restored(records, {TopicPartition("readings", 0): 150})
    assert status(committed, "/d/1") == "b-40"
    assert status(committed, "/d/2") == "a-900"
    assert report.cuts == {0: {"readings/0": 150}}


def test_a_restore_of_some_shards_reads_only_their_partitions() -> None:
    records = checkpoint(0, 0, 5, 10, {"/d/0": "zero"}, marker=True) + checkpoint(
        1, 0, 5, 20, {"/d/1": "one"}, marker=True, partition_source=1
    )
    offsets = {TopicPartition("readings", 0): 10, TopicPartition("readings", 1): 20}
    committed = MemoryCommitted()
    report = asyncio.run(
        recover(committed, ListReader(records, offsets), "app.changelog", 2, offsets, shards={1})
    )
    assert committed.load("/d/0") is None
    assert status(committed, "/d/1") == "one"
    assert report.cuts == {1: {"readings/1": 20}}
    assert set(committed.positions()) == {1}


class Names(Agent):
    seen = MapLane[str, int]()


async def test_a_map_key_that_cannot_be_stored_is_left_out_and_its_agent_loads_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A key with a lone surrogate (``json.loads`` reads ``"\\ud800"`` from a record)
    was stored as a row, whose name takes any text; rebuilding the lane's snapshot from
    the rows then failed to encode it, and the agent could never load again."""
    store = DurableAgentStore(MemoryCommitted())
    bad = json.loads('"\\ud800x"')
    async with open_plane({"/names/:id": Names}, store=store) as plane:
        tracker = StateTracker(store, lambda node: 0)
        tracker.attach(plane)
        await plane.command("/names/a", "seen", {"update": bad, "value": 1})
        await plane.command("/names/a", "seen", {"update": "ok", "value": 2})
        await plane.settle()
        rows = {name: value for _, name, value, _ in tracker.collect() if value is not None}
    assert set(rows) == {entry_name("seen", "ok")}
    assert "is not stored" in caplog.text
    snapshot = decode_snapshot(assemble(rows)["seen"])
    assert isinstance(snapshot, MapSnapshot)
    assert LWWMap.from_snapshot(snapshot, "r").to_dict() == {"ok": 2}

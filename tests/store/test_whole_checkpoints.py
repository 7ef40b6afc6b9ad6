"""A checkpoint is applied in every changelog partition or in none.

Each checkpoint closes its records with a marker in every partition. A crash between two
partitions' markers left one half closed, and where the cut had not moved (the state
changed through a timer or an HTTP command only) the sources' offsets could not tell:
the restart applied the closed half and skipped the other. An effect was kept without
its cause (a timer's command applied, the timer's own record lost, so it fired again),
and the new incarnation, claiming that checkpoint as restored, left a later rebuild from
the changelog alone to apply the other half too.
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Iterable
from typing import cast

import pytest

from swimstream.store.committed import MemoryCommitted
from swimstream.store.recovery import RecoveryReport, recover
from swimstream.streams import TopicPartition
from swimstream.testing import MemoryRecord, open_plane
from tests.store.test_checkpoint_turns import Meter, SlowTransactions, exactly_once_checkpointer
from tests.store.test_recovery import ListReader, changelog_record, checkpoint, compacted, status

pytestmark = pytest.mark.usefixtures("held_tail_kept")

OFFSETS = {TopicPartition("readings", 0): 100}
"""The sources' committed offsets: every checkpoint here has this cut (it did not move)."""

closed = functools.partial(checkpoint, source=100, writer=True, instance="i1")


def restore(
    records: list[MemoryRecord], store: MemoryCommitted | None = None
) -> tuple[MemoryCommitted, RecoveryReport]:
    """``store`` (a fresh one by default) restored from ``records`` over two partitions."""
    store = MemoryCommitted() if store is None else store
    reader = ListReader(records, OFFSETS)
    report = asyncio.run(recover(store, reader, "app.changelog", 2, OFFSETS))
    return store, report


def test_a_checkpoint_closed_in_one_partition_of_two_is_applied_in_neither() -> None:
    # Checkpoint 5: a timer of /tower/b (shard 1) commanded /a/1 (shard 0); its marker
    # reached partition 0 only, then kill -9.
    crashed = (
        closed(0, 0, 4, values={"/a/1": "count=1"}, marker=True)
        + closed(1, 0, 4, values={"/tower/b": "timer due t1"}, marker=True)
        + closed(0, 2, 5, values={"/a/1": "count=2"}, marker=True)
        + closed(1, 2, 5, values={"/tower/b": "timer due t2"}, marker=False)
    )
    store, report = restore(crashed)
    assert (status(store, "/a/1"), status(store, "/tower/b")) == ("count=1", "timer due t1")
    assert report.committed_through == 4 and report.skipped_checkpoints == [5]
    assert report.last_checkpoint == 5  # the next incarnation numbers from 6
    assert store.positions()[0].checkpoint == 4

    # The next incarnation restored from 4 and starts at 6; its timer fires again.
    records = crashed + (
        closed(0, 4, 6, values={"/a/1": "count=2"}, marker=True, lineage=(4, 6))
        + closed(1, 3, 6, values={"/tower/b": "timer due t2"}, marker=True, lineage=(4, 6))
    )
    restarted, again = restore(records, store)
    rebuilt, rebuild = restore(records)
    for restored in (restarted, rebuilt):
        assert (status(restored, "/a/1"), status(restored, "/tower/b")) == (
            "count=2",
            "timer due t2",
        )
        assert restored.positions()[0].checkpoint == restored.positions()[1].checkpoint == 6
    assert 5 in again.skipped_checkpoints and 5 in rebuild.skipped_checkpoints


def test_a_later_incarnation_s_records_vouch_for_none_of_what_it_says_was_cut_short() -> None:
    """The next incarnation (restored from 4, first id 6) crashed too, after its
    records of 6 and before their markers: its records are not a later checkpoint that
    vouches for 5, which its lineage says was cut short."""
    records = (
        closed(0, 0, 4, values={"/a/1": "count=1"}, marker=True)
        + closed(1, 0, 4, values={}, marker=True)
        + closed(0, 2, 5, values={"/a/1": "count=2"}, marker=True)
        + closed(0, 4, 6, values={"/a/1": "count=2 again"}, marker=False, lineage=(4, 6))
    )
    store, report = restore(records)
    assert status(store, "/a/1") == "count=1"
    assert report.committed_through == 4 and report.skipped_checkpoints == [5]


def test_another_instance_s_checkpoint_half_closed_so_far_is_read_again_next_time() -> None:
    """Instance j's checkpoint 7 is in flight as this one restores: its marker is in
    partition 0 and not yet in 1. It is skipped, and the next read starts at it."""
    j = functools.partial(closed, instance="j")
    first = j(0, 0, 6, values={"/a/1": "six"}, marker=True) + j(1, 0, 6, values={}, marker=True)
    in_flight = j(0, 2, 7, values={"/a/1": "seven"}, marker=True)
    store, report = restore(first + in_flight)
    assert status(store, "/a/1") == "six" and report.skipped_checkpoints == [7]
    assert store.positions()[0].changelog_offset == 2

    later = restore(first + in_flight + j(1, 1, 7, values={}, marker=True), store)[0]
    assert status(later, "/a/1") == "seven"


def test_an_instance_s_last_checkpoint_keeps_its_markers_through_compaction() -> None:
    """Instance i1 wrote its last checkpoint and left; j checkpoints on. Compaction keeps
    the newest record of each key: with one marker key for all, j's markers removed
    i1's in partition 1, where i1 wrote nothing else, and i1's state was skipped."""
    j = functools.partial(closed, instance="j")
    records = (
        closed(0, 0, 9, values={"/a/1": "i1's last"}, marker=True)
        + closed(1, 0, 9, values={}, marker=True)
        + j(0, 2, 1, values={"/b/1": "j1"}, marker=True)
        + j(1, 1, 1, values={"/b/2": "j1"}, marker=True)
        + j(0, 4, 2, values={"/b/1": "j2"}, marker=True)
        + j(1, 3, 2, values={"/b/2": "j2"}, marker=True)
    )
    rebuilt, report = restore(compacted(records))
    assert status(rebuilt, "/a/1") == "i1's last"
    assert (status(rebuilt, "/b/1"), status(rebuilt, "/b/2")) == ("j2", "j2")
    assert report.skipped_checkpoints == []


SHARDS = {"/meter/a": 0, "/meter/b": 1}


class KeptChangelog(SlowTransactions):
    """A transactional sink that keeps what is produced as a two-partition changelog."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[MemoryRecord] = []
        self._ends: defaultdict[int, int] = defaultdict(int)

    def _keep(
        self, key: bytes, value: bytes | None, headers: Iterable[tuple[str, bytes]], at: int
    ) -> int:
        offset = self._ends[at]
        self._ends[at] += 1
        self.records.append(changelog_record(at, offset, key, value, list(headers)))
        return offset

    def produce(self, *record: object, partition: int | None = None, **options: object) -> None:
        _topic, key, value, headers = record[:4]
        offset = self._keep(key, value, headers, partition or 0)  # type: ignore[arg-type]
        on_written = options.get("on_written")
        if callable(on_written):
            on_written(partition or 0, offset)

    def produce_many(
        self, _topic: str, records: Iterable[object], *rest: object, **_: object
    ) -> None:
        headers = cast(Iterable[tuple[str, bytes]], rest[0])
        for record in records:
            key, value, shard = cast(tuple[bytes, bytes | None, int], record)
            self._keep(key, value, headers, shard)


async def checkpoints_of(
    instance: str, log: KeptChangelog, commands: list[tuple[str, int]]
) -> None:
    """An instance that sets each node's level in turn, checkpointing each, and stops."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        checkpointer = exactly_once_checkpointer(
            plane, log, partitions=2, shard_of=SHARDS.__getitem__, instance=instance
        )
        checkpointer.start()
        for node, level in commands:
            await plane.command(node, "read", level)
            await plane.settle()
            await checkpointer.checkpoint()
        await checkpointer.finish()
        await checkpointer.close()


def test_what_an_instance_checkpointed_before_it_left_survives_compaction() -> None:
    log = KeptChangelog()
    asyncio.run(checkpoints_of("one", log, [("/meter/a", 7)]))
    asyncio.run(checkpoints_of("two", log, [("/meter/b", 1), ("/meter/b", 2)]))
    rebuilt = MemoryCommitted()
    reader = ListReader(compacted(log.records), {})
    asyncio.run(recover(rebuilt, reader, "app.changelog", 2, {}))
    assert status(rebuilt, "/meter/a", "level") == 7
    assert status(rebuilt, "/meter/b", "level") == 2


def test_the_id_of_a_checkpoint_cut_short_before_its_markers_is_not_used_again() -> None:
    # Checkpoint 5's records were produced, then kill -9 before any of its markers (the
    # broker shows them, as Tansu does). The next incarnation numbers from the highest id
    # seen (where its clock is behind that of the crashed one): a 5 of its own would
    # have joined the crashed records' group, and its marker applied them.
    crashed = (
        closed(0, 0, 4, values={"/a/1": "count=1"}, marker=True)
        + closed(1, 0, 4, values={"/tower/b": "timer due t1"}, marker=True)
        + closed(0, 2, 5, values={"/a/1": "count=2"}, marker=False)
        + closed(1, 2, 5, values={"/tower/b": "timer due t2"}, marker=False)
    )
    store, report = restore(crashed)
    assert (status(store, "/a/1"), status(store, "/tower/b")) == ("count=1", "timer due t1")
    assert report.committed_through == 4

    # The next incarnation changes /a/1 only; its ids run from the highest one seen.
    following = report.last_checkpoint + 1
    lineage = (4, following)
    records = crashed + (
        closed(0, 3, following, values={"/a/1": "count=2"}, marker=True, lineage=lineage)
        + closed(1, 3, following, values={}, marker=True, lineage=lineage)
    )
    restarted, _ = restore(records, store)
    rebuilt, _ = restore(records)
    for restored in (restarted, rebuilt):
        assert (status(restored, "/a/1"), status(restored, "/tower/b")) == (
            "count=2",
            "timer due t1",
        )

"""Committed checkpoints reach the local store in order, batched when the store lags."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from swimstream.errors import StoreError
from swimstream.store.changelog import ChangelogEntry, ChangelogRow
from swimstream.store.committed import MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.local_writer import LocalWriter
from swimstream.store.sqlite import Keep, ShardPosition, SQLiteStore


class SlowCommitted(MemoryCommitted):
    """Committed state whose writes take a while (a disk behind a fast stream)."""

    def __init__(self, fail_at: int | None = None, delay: float = 0.05) -> None:
        super().__init__()
        self.batches: list[int] = []
        self.attempts = 0
        self.fail_at = fail_at
        self.delay = delay

    async def write_async(
        self,
        entries: Sequence[ChangelogRow],
        positions: Mapping[int, ShardPosition],
        keep: Keep | None = None,
    ) -> None:
        self.attempts += 1
        if self.attempts == self.fail_at:  # that write only: later ones would succeed
            raise StoreError("disk full")
        await asyncio.sleep(self.delay)
        self.batches.append(len(entries))
        await super().write_async(entries, positions, keep)


def checkpoint(n: int) -> tuple[list[ChangelogEntry], dict[int, ShardPosition]]:
    entries = [ChangelogEntry("/a", "count", str(n).encode(), 0)]
    if n % 2:
        entries.append(ChangelogEntry(f"/odd/{n}", "seen", b"1", 0))
    return entries, {0: ShardPosition(n + 1, n, {"t/0": n})}


async def test_checkpoints_queued_behind_a_slow_write_go_in_together_in_order() -> None:
    committed = SlowCommitted()
    store = DurableAgentStore(committed)
    for n in range(5):  # passivated agents, each covered by the checkpoint of its generation
        store.generation = n
        store.save(f"/sleeper/{n}", {"level": b"1"})
    writer = LocalWriter(store, spacing=0)
    for n in range(5):
        writer.submit(*checkpoint(n), generation=n)
        await asyncio.sleep(0)
    await writer.drained()
    assert writer.checkpoints == 5
    assert writer.writes == 2  # the first alone, the four queued behind it in one
    assert committed.batches == [1, 4 + 2]
    assert committed.load("/a") == {"count": b"4"}  # the last checkpoint's value won
    assert committed.positions()[0].checkpoint == 4
    assert committed.count() == 3  # /a, /odd/1, /odd/3
    assert store.overlay_size == 0  # every passivation covered by a written checkpoint


async def test_a_failed_write_stops_later_writes_and_is_reported() -> None:
    committed = SlowCommitted(fail_at=2)
    writer = LocalWriter(DurableAgentStore(committed), spacing=0)
    writer.submit(*checkpoint(0), generation=0)
    await writer.drained()
    writer.submit(*checkpoint(1), generation=1)
    with pytest.raises(StoreError, match="disk full"):
        await writer.drained()
    writer.submit(*checkpoint(2), generation=2)
    await writer.close()
    assert isinstance(writer.failure, StoreError)
    assert committed.attempts == 2  # checkpoint 2 was not even tried
    assert committed.batches == [1]
    assert committed.positions()[0].checkpoint == 0  # nothing after the failure


async def test_writes_are_spaced_and_the_last_one_does_not_wait_for_the_spacing() -> None:
    committed = SlowCommitted(delay=0)
    writer = LocalWriter(DurableAgentStore(committed), spacing=30.0)
    for n in range(4):  # a checkpoint every 10 ms
        writer.submit(*checkpoint(n), generation=n)
        await asyncio.sleep(0.01)
    assert committed.batches == [1]  # the first at once; the rest wait for the spacing
    await asyncio.wait_for(writer.drained(), 10)  # the final checkpoint does not wait
    assert committed.batches == [1, 2 + 1 + 2]  # checkpoints 1 to 3, in one write
    assert committed.positions()[0].checkpoint == 3


async def test_a_checkpoint_waiting_to_be_written_does_not_undo_a_restore_made_since() -> None:
    """Shard 0 left with its checkpoint queued here, and came back: its restore wrote
    the other owner's later state. The queued write lands after it and must leave the
    shard alone; shard 1's part of the same checkpoint is written."""
    committed = MemoryCommitted()
    writer = LocalWriter(DurableAgentStore(committed), spacing=30.0)
    writer.submit(*checkpoint(0), generation=0)  # written at once; the next ones wait
    await asyncio.sleep(0)
    queued = [ChangelogEntry("/a", "count", b"mine", 0), ChangelogEntry("/b", "count", b"b", 1)]
    writer.submit(queued, {0: ShardPosition(5, 7, {}), 1: ShardPosition(3, 7, {})}, generation=1)
    restored = [ChangelogEntry("/a", "count", b"other owner's", 0)]
    await committed.write_async(restored, {0: ShardPosition(9, 8, {})})  # the restore
    await writer.drained()
    assert committed.load("/a") == {"count": b"other owner's"}
    assert committed.positions()[0].changelog_offset == 9
    assert committed.load("/b") == {"count": b"b"}
    assert committed.positions()[1].changelog_offset == 3


async def test_a_restore_s_write_still_queued_in_the_store_s_thread_is_not_undone(
    tmp_path: Path,
) -> None:
    """The same, with the restore's write not yet made when the queued checkpoint's turn
    comes: both wait in the SQLite store's one thread (held here by a slow write ahead
    of them), the restore's first. Judged on the loop, before either ran, the shard was
    not behind, and the older checkpoint landed over the restore."""
    store = SQLiteStore(tmp_path / "store.sqlite").open()
    try:
        writer = LocalWriter(DurableAgentStore(store), spacing=0.0)
        busy = threading.Event()
        store._worker.submit(busy.wait, 10)  # a slow write ahead of both
        restored = [ChangelogEntry("/a", "count", b"other owner's", 0)]
        restore = asyncio.ensure_future(store.write_async(restored, {0: ShardPosition(9, 8, {})}))
        await asyncio.sleep(0)  # the restore's write is queued
        writer.submit([ChangelogEntry("/a", "count", b"mine", 0)], {0: ShardPosition(5, 7, {})}, 1)
        await asyncio.sleep(0.05)  # the checkpoint's write is queued behind it
        busy.set()
        await restore
        await writer.drained()
        assert store.load("/a") == {"count": b"other owner's"}
        assert store.positions()[0].changelog_offset == 9
    finally:
        store.close()

"""Checkpoints: consistent cuts of the whole instance, made durable in one step.

Every ``interval`` seconds (and once more when the service stops):

1. **Barrier.** The sources stop routing new records; the plane settles (every
   mailbox empty: records finished, the commands they caused, link deliveries); the
   sink flushes, so every insight is acknowledged and every record complete. What the
   instance holds now is exactly the effect of the records before the sources'
   positions: a consistent cut.
2. **Store.** Every lane, link set and timer set that changed since the last
   checkpoint is written to the changelog as its current state (one record per name,
   however often it changed), then a marker per partition names the checkpoint and the
   source offsets it commits.
3. **Commit.** ``exactly-once``: the changelog records, the insights produced since the
   last checkpoint and the source offsets commit as one Kafka transaction.
   ``at-least-once``: the records are acknowledged first, then the offsets committed.
4. **Resume** the sources, and write the checkpoint to the local SQLite store in the
   background (it holds only committed checkpoints).

A checkpoint that fails to commit leaves memory ahead of what the broker holds; the
instance cannot continue without applying records twice, so the failure stops it
(health red, exit non-zero) and recovery resumes from the last committed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from swimstream.runtime import Plane
from swimstream.store.changelog import MARKER_KEY, ChangelogEntry, entry_key, headers, marker_value
from swimstream.store.durable import DurableAgentStore
from swimstream.store.sqlite import ShardPosition
from swimstream.store.tracker import StateTracker
from swimstream.streams.connector import ChangelogSink, TopicPartition, TransactionalSink
from swimstream.streams.ingest import SourceRunner

log = logging.getLogger("swimstream.checkpoint")


@dataclass
class CheckpointStats:
    """Counters of the checkpoints made so far."""

    checkpoints: int = 0
    records: int = 0
    last_seconds: float = 0.0
    barrier_seconds: float = 0.0


class Checkpointer:
    """Makes checkpoints (see the module docstring)."""

    def __init__(
        self,
        *,
        plane: Plane,
        tracker: StateTracker,
        store: DurableAgentStore,
        sink: ChangelogSink,
        changelog_topic: str,
        partitions: int,
        runners: Sequence[SourceRunner],
        exactly_once: bool,
        interval: float,
        group_metadata: Callable[[], object] | None,
        first_checkpoint: int = 1,
    ) -> None:
        self._plane = plane
        self._tracker = tracker
        self._store = store
        self._sink = sink
        self._topic = changelog_topic
        self._partitions = partitions
        self._runners = list(runners)
        self._exactly_once = exactly_once
        self._interval = interval
        self._group_metadata = group_metadata
        self._next_id = first_checkpoint
        self._writing: asyncio.Task[None] | None = None
        self._in_transaction = False
        self.stats = CheckpointStats()
        self.failure: BaseException | None = None

    @property
    def current(self) -> int:
        """The id of the checkpoint being built (the one open work belongs to)."""
        return self._next_id

    @property
    def _transactional(self) -> TransactionalSink:
        assert self._exactly_once
        return self._sink  # type: ignore[return-value]

    def start(self) -> None:
        """Open the first transaction (exactly-once); call before any record is routed."""
        if self._exactly_once and not self._in_transaction:
            self._transactional.begin_transaction()
            self._in_transaction = True

    async def run(self, stopping: asyncio.Event) -> None:
        """Checkpoint every ``interval`` until ``stopping`` is set (the final one is
        :meth:`checkpoint` called by the service after the sources stopped)."""
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._interval)
            if stopping.is_set():
                return
            await self.checkpoint()

    async def checkpoint(self) -> None:
        """One checkpoint (see the module docstring); raises when it could not commit."""
        started = time.monotonic()
        checkpoint = self._next_id
        for runner in self._runners:
            runner.hold()
        try:
            await self._barrier()
            barrier = time.monotonic() - started
            entries = self._tracker.collect()
            generation = self._store.next_generation()
            offsets = self._source_offsets()
            markers = await self._write(checkpoint, entries, offsets)
            await self._commit(offsets)
        except BaseException as exc:
            self.failure = exc
            raise
        finally:
            for runner in self._runners:
                runner.release()
        self._next_id += 1
        for runner in self._runners:
            runner.checkpointed(offsets)
        positions = {
            p: ShardPosition(offset + 1, checkpoint, self._shard_sources(offsets, p))
            for p, offset in markers.items()
        }
        self._write_local(entries, positions, generation)
        elapsed = time.monotonic() - started
        self.stats.checkpoints += 1
        self.stats.records += len(entries)
        self.stats.last_seconds = elapsed
        self.stats.barrier_seconds = barrier
        log.debug("checkpoint %d: %d records in %.3f s", checkpoint, len(entries), elapsed)

    async def close(self) -> None:
        """Wait for the last local write; abort an open transaction."""
        if self._writing is not None:
            await self._writing
        if self._exactly_once and self._in_transaction:
            self._in_transaction = False
            try:
                await self._transactional.abort_transaction()
            except Exception as exc:  # closing anyway: nothing of it was committed
                log.warning("aborting the open transaction at close: %s", exc)

    # -- steps ---------------------------------------------------------------------------

    async def _barrier(self) -> None:
        plane = self._plane
        deadline = time.monotonic() + 60.0
        while True:
            if plane.running:
                await plane.settle()
            if not await self._sink.flush(max(0.1, deadline - time.monotonic())):
                raise TimeoutError("the sink did not acknowledge its records within 60 s")
            if all(runner.book.inflight == 0 for runner in self._runners):
                return
            if time.monotonic() > deadline:
                unfinished = sum(runner.book.inflight for runner in self._runners)
                raise TimeoutError(f"{unfinished} records did not finish within 60 s")
            await asyncio.sleep(0.001)

    def _source_offsets(self) -> dict[TopicPartition, int]:
        offsets: dict[TopicPartition, int] = {}
        for runner in self._runners:
            offsets.update(runner.book.positions())
        return offsets

    def _shard_sources(self, offsets: dict[TopicPartition, int], shard: int) -> dict[str, int]:
        return {tp.topic: offset for tp, offset in offsets.items() if tp.partition == shard}

    async def _write(
        self, checkpoint: int, entries: list[ChangelogEntry], offsets: dict[TopicPartition, int]
    ) -> dict[int, int]:
        """Produce the entries and one marker per partition; returns marker offsets."""
        sink = self._sink
        topic = self._topic
        per_shard = {
            p: headers(checkpoint, self._shard_sources(offsets, p)) for p in range(self._partitions)
        }
        for entry in entries:
            sink.produce(
                topic,
                entry_key(entry.node_uri, entry.name),
                entry.value,
                per_shard[entry.shard],
                partition=entry.shard,
            )
        markers: dict[int, int] = {}

        def written(partition: int, offset: int) -> None:
            markers[partition] = offset

        for p in range(self._partitions):
            sources = self._shard_sources(offsets, p)
            sink.produce(
                topic,
                MARKER_KEY,
                marker_value(checkpoint, sources),
                per_shard[p],
                partition=p,
                on_written=written,
            )
        if not self._exactly_once and not await sink.flush(30.0):
            raise TimeoutError("the changelog records were not acknowledged within 30 s")
        return markers

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        kafka_offsets = {tp: o for tp, o in offsets.items() if self._in_transaction_of(tp)}
        if self._exactly_once:
            sink = self._transactional
            if kafka_offsets and self._group_metadata is not None:
                await sink.send_offsets_to_transaction(kafka_offsets, self._group_metadata())
            await sink.commit_transaction()
            sink.begin_transaction()
        # at-least-once: the changelog is acknowledged (see _write); each runner commits
        # its offsets in checkpointed(), after this.

    def _in_transaction_of(self, tp: TopicPartition) -> bool:
        return any(tp in runner.book.trackers and runner.transactional for runner in self._runners)

    def _write_local(
        self, entries: list[ChangelogEntry], positions: dict[int, ShardPosition], generation: int
    ) -> None:
        previous = self._writing

        async def write() -> None:
            if previous is not None:
                await previous
            await self._store.committed.write_async(entries, positions)
            self._store.written(generation)

        self._writing = asyncio.get_running_loop().create_task(
            write(), name="swimstream-local-write"
        )

"""Checkpoints: consistent cuts of the whole instance, made durable in one step.

Every ``interval`` seconds (and once more when the service stops), two phases:

**The cut** (the instance stops routing records for its duration):

1. the sources stop routing; the plane settles: every mailbox empty, so every record
   routed so far has finished, with the commands it caused and its link deliveries,
   and every insight it published has been handed to the producer (coalesced lane
   sinks flush here). The positions after the last routed records are the cut: the
   instance holds exactly their effects;
2. every lane (or map entry), link set and timer set that changed since the last cut is
   handed to the producer as its current state (one record per name, however often it
   changed), then a marker per changelog partition names the checkpoint and the source
   offsets of the cut;
3. ``exactly-once``: records produced from now on are held back for the next
   transaction (:mod:`swimstream.store.deferral`). The sources resume.

**The commit** (overlapped with processing; the next cut waits for it):
``exactly-once`` commits the transaction holding the changelog records, every insight
produced since the last cut and the cut's source offsets, then opens the next one and
lets the held records in. ``at-least-once`` waits until the broker has acknowledged
everything produced so far, then commits the cut's offsets. Then the checkpoint is
queued for the local SQLite store, which holds only committed checkpoints
(:mod:`swimstream.store.local_writer` writes them in batches, off the loop).

**Nothing new, no checkpoint.** A periodic checkpoint is skipped when nothing changed
since the last cut: no state, no source position, and (``exactly-once``) nothing produced
into the open transaction, as Kafka Streams commits only tasks that processed something.
An idle instance then writes no markers and runs no transactions; the checkpointer waits
for the plane or a source to get work (or :data:`IDLE_RECHECK` seconds) before looking
again, then checkpoints within ``interval`` as usual.

**At a revoke**, :meth:`Checkpointer.commit_now` checkpoints at once (unless nothing
changed) and waits for the commit, so the partitions leave with everything routed from
them committed (:mod:`swimstream.service.handover`); it shares the periodic
checkpoints' turn, one checkpoint at a time.

A checkpoint that fails to commit leaves memory ahead of what the broker holds; the
instance cannot continue without applying records twice, so the failure stops it
(health red, exit non-zero) and recovery resumes from the last committed checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

from swimstream.errors import BrokerError, ClosedResourceError
from swimstream.runtime import Plane
from swimstream.runtime.waiting import first_of
from swimstream.store.changelog import (
    ChangelogRow,
    Marker,
    cut_key,
    headers,
    marker_key,
    marker_value,
)
from swimstream.store.deferral import DeferringSink
from swimstream.store.durable import DurableAgentStore
from swimstream.store.local_writer import LocalWriter
from swimstream.store.sqlite import ShardPosition
from swimstream.store.tracker import StateTracker
from swimstream.streams.connector import ChangelogSink, TopicPartition, TransactionalSink
from swimstream.streams.ingest import SourceRunner
from swimstream.text import counted

log = logging.getLogger("swimstream.checkpoint")

COMMIT_TIMEOUT = 60.0
"""Seconds a checkpoint's commit may wait for the broker before the instance gives up
(exit 1), with either guarantee: a broker away for less keeps the instance running,
unready, as Kafka Streams' ``task.timeout.ms`` rides out a short outage. Processing goes
on meanwhile, up to the work the sources let be in flight."""

IDLE_RECHECK = 1.0
"""Seconds an idle checkpointer sleeps at most before looking for changes again (it is
woken at once when agents get work or records arrive; this covers anything else)."""


@dataclass
class CheckpointStats:
    """Counters of the checkpoints made so far."""

    checkpoints: int = 0
    records: int = 0
    last_seconds: float = 0.0
    barrier_seconds: float = 0.0
    skipped: int = 0
    """Periodic checkpoints left out because nothing had changed."""


class OtherSink(Protocol):
    """A sink outside the changelog's producer (another protocol's: Pulsar)."""

    async def flush(self, timeout: float) -> bool:
        """Wait until every record produced so far is reported (True), or ``timeout``."""
        ...


class CoalescedSink(Protocol):
    """A lane sink that holds changes until it is flushed (at every cut)."""

    @property
    def pending(self) -> int:
        """Changes waiting for the next flush."""
        ...

    def flush(self) -> None:
        """Produce the changes held."""
        ...


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
        restored_from: int = 0,
        instance: str = "",
        flush_sinks: Sequence[CoalescedSink] = (),
        other_sinks: Sequence[OtherSink] = (),
        delivery_failures: Callable[[], int] = lambda: 0,
        owned_shards: Callable[[], Collection[int]] = lambda: (),
    ) -> None:
        """``owned_shards`` names the shards whose changelog partitions this instance's
        store reflects whole up to its next marker there: besides those a cut routed
        from, those it holds that routed nothing (see :meth:`_owned`)."""
        self._plane = plane
        self._tracker = tracker
        self._store = store
        self._sink = sink
        self._undelivered = sink.undelivered  # refusals seen by the last checkpoint
        self._topic = changelog_topic
        self._partitions = partitions
        self._runners = list(runners)
        self._exactly_once = exactly_once
        self._interval = interval
        self._group_metadata = group_metadata
        self._next_id = first_checkpoint
        self._first = first_checkpoint
        self._restored_from = restored_from
        self._instance = instance
        self._flush_sinks = list(flush_sinks)
        self._other_sinks = list(other_sinks)
        self._delivery_failures = delivery_failures
        self._owned_shards = owned_shards
        self._failed_deliveries = delivery_failures()  # as the last checkpoint saw them
        self.local = LocalWriter(store)
        self._committing: asyncio.Task[None] | None = None
        self._cut = asyncio.Lock()  # one barrier at a time: a cut, or a change at rest
        self._turn = asyncio.Lock()  # one checkpoint at a time: periodic, revoke, final
        self._last_cut: dict[TopicPartition, int] | None = None
        self._produced_at_cut = 0
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
        sink = self._sink
        inner = sink.inner if isinstance(sink, DeferringSink) else sink
        return inner  # type: ignore[return-value]

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
            committing = self._committing
            if committing is not None and not committing.done():
                # A commit slower than the interval: wait for it, then ask again. A cut
                # made meanwhile would hold nothing new when the instance is idle, and
                # each one commits its own (empty) transaction.
                await asyncio.wait([committing])
            if self._nothing_to_cut():
                self.stats.skipped += 1
                await self._wait_for_work(stopping)
                continue
            try:
                await self.checkpoint()
            except ClosedResourceError:
                return  # the drain ended with work left: the last committed cut stands

    def unchanged(self) -> bool:
        """Whether a checkpoint now would hold nothing the last one did not: no state
        changed, no source moved on, nothing produced into the open transaction, no
        commit running or failed (a failure must surface at the next checkpoint)."""
        committing = self._committing
        if committing is not None and (
            not committing.done() or committing.cancelled() or committing.exception()
        ):
            return False
        if self._last_cut is None or self.local.failure is not None or len(self._tracker):
            return False
        if any(sink.pending for sink in self._flush_sinks):
            return False
        if self._exactly_once:
            sink = self._sink
            if not isinstance(sink, DeferringSink) or sink.produced != self._produced_at_cut:
                return False
        cut: dict[TopicPartition, int] = {}
        for runner in self._runners:
            cut.update(runner.book.routed_positions())
        return cut == self._last_cut

    def _nothing_to_cut(self) -> bool:
        """:meth:`unchanged`, and then the store's overlay may let go of what committed
        state holds already (:meth:`DurableAgentStore.settle`)."""
        if not self.unchanged():
            return False
        self._store.settle()
        return True

    async def _wait_for_work(self, stopping: asyncio.Event) -> None:
        """Sleep until the plane or a source gets work, ``stopping`` is set, or
        :data:`IDLE_RECHECK` passed."""
        waits = [self._plane.wait_for_work(), stopping.wait()]
        waits += [runner.wait_for_records() for runner in self._runners]
        await first_of(waits, IDLE_RECHECK)

    async def checkpoint(self) -> None:
        """Make a cut and start its commit (see the module docstring); raises when the
        previous checkpoint failed to commit."""
        async with self._turn:
            await self._checkpoint()

    async def commit_now(self) -> None:
        """Checkpoint now unless nothing changed since the last cut, and return once it
        and every checkpoint before it are committed; raises as :meth:`checkpoint`.

        For a revoke (:mod:`swimstream.service.handover`): everything routed until now
        is then committed, state, offsets and insights together, before the partitions
        go to their next owner."""
        async with self._turn:
            if self._committing is not None:
                await asyncio.shield(self._committing)
            if not self._nothing_to_cut():
                await self._checkpoint()
            committing = self._committing
        if committing is not None:
            await asyncio.shield(committing)

    async def _checkpoint(self) -> None:
        if self._committing is not None:
            await self._committing  # one commit at a time, in order; raises its failure
        failed = self.local.failure
        if failed is not None:  # the local store took no more: stop, loudly
            raise failed
        started = time.monotonic()
        checkpoint = self._next_id
        try:
            async with self._at_rest():
                entries, cut, markers, generation, mark = self._make_cut(checkpoint)
                owned = self._owned(cut)
        except ClosedResourceError:
            raise  # no cut: not a failure (the service stops, its drain over)
        except BaseException as exc:
            self.failure = exc
            raise
        self._next_id += 1
        self.stats.barrier_seconds = time.monotonic() - started
        self._committing = asyncio.get_running_loop().create_task(
            self._commit(checkpoint, entries, cut, owned, markers, generation, mark, started),
            name=f"swimstream-commit-{checkpoint}",
        )

    async def at_rest(self, change: Callable[[], None]) -> None:
        """Run ``change()`` with the sources held and the plane settled, as at a cut and
        never during one: for changes to which agents are in memory (a shard leaving
        this instance, or restored into it) that no turn may see half done."""
        async with self._at_rest():
            change()

    @contextlib.asynccontextmanager
    async def _at_rest(self) -> AsyncIterator[None]:
        """The sources held (nothing new routed) and every mailbox empty, one at a time."""
        async with self._cut:
            for runner in self._runners:
                runner.hold()
            try:
                if self._plane.running:
                    await self._plane.settle()
                if self._plane.dropped or self._plane.crashed is not None:
                    raise ClosedResourceError("the plane stopped with work left: no cut of it")
                yield
            finally:
                for runner in self._runners:
                    runner.release()

    def _make_cut(
        self, checkpoint: int
    ) -> tuple[list[ChangelogRow], dict[TopicPartition, int], dict[int, int], int, object]:
        for coalesced in self._flush_sinks:
            coalesced.flush()  # coalesced lane sinks: their insights belong to this cut
        entries = self._tracker.collect()
        generation = self._store.next_generation()
        cut: dict[TopicPartition, int] = {}
        for runner in self._runners:
            cut.update(runner.book.routed_positions())
        markers = self._write(checkpoint, entries, cut)
        if self._exactly_once and isinstance(self._sink, DeferringSink):
            self._sink.hold()
            self._produced_at_cut = self._sink.produced
        self._last_cut = cut
        # (At least once, the commit waits for the records produced until here only.)
        mark = None if self._exactly_once else self._sink.mark()
        return entries, cut, markers, generation, mark

    def _owned(self, cut: dict[TopicPartition, int]) -> frozenset[int]:
        """The shards whose position this checkpoint moves, named at its cut.

        Only this instance's: in the other changelog partitions another instance's
        records may lie before this marker, which this store never read (it would skip
        them when it takes such a shard over). Those of the partitions in the cut are
        its own, and so are the shards it holds with their state restored whether or
        not anything was routed from them: left out, a quiet shard's position stayed
        where the last restore put it, and every restart read that changelog partition
        (a marker per checkpoint) again from there."""
        return frozenset({tp.partition for tp in cut} | set(self._owned_shards()))

    async def _delivered_elsewhere(self, checkpoint: int) -> None:
        """Insights and dead letters of the cut that went to other sinks than the
        changelog's producer are in neither its transaction nor its flush: they must be
        delivered before the cut's offsets commit, or a crash or a refusal loses them."""
        for sink in self._other_sinks:
            if not await sink.flush(COMMIT_TIMEOUT):
                raise TimeoutError(
                    f"checkpoint {checkpoint}: a sink did not deliver its records within "
                    f"{COMMIT_TIMEOUT:.0f} s"
                )
        failed = self._delivery_failures()
        if failed != self._failed_deliveries:
            lost, self._failed_deliveries = failed - self._failed_deliveries, failed
            raise BrokerError(
                f"checkpoint {checkpoint}: {counted(lost, 'insight or dead-letter record')} "
                "not delivered (see the errors logged above)"
            )

    async def _commit(
        self,
        checkpoint: int,
        entries: list[ChangelogRow],
        cut: dict[TopicPartition, int],
        owned: frozenset[int],
        markers: dict[int, int],
        generation: int,
        mark: object,
        started: float,
    ) -> None:
        try:
            await self._delivered_elsewhere(checkpoint)
            if self._exactly_once:
                sink = self._transactional
                in_transaction = {tp: o for tp, o in cut.items() if self._in_transaction_of(tp)}
                if in_transaction and self._group_metadata is not None:
                    await sink.send_offsets_to_transaction(
                        in_transaction, self._group_metadata(), COMMIT_TIMEOUT
                    )
                await sink.commit_transaction(COMMIT_TIMEOUT)
                sink.begin_transaction()
                if isinstance(self._sink, DeferringSink):
                    self._sink.release()
            else:
                if not await self._sink.flush_to(mark, COMMIT_TIMEOUT):
                    raise TimeoutError(
                        f"the broker did not acknowledge the checkpoint within "
                        f"{COMMIT_TIMEOUT:.0f} s"
                    )
                refused = self._sink.undelivered - self._undelivered
                if refused:
                    # Changelog records or insights of the cut were lost: its offsets stay
                    # uncommitted, and the restart after this failure replays them.
                    self._undelivered = self._sink.undelivered
                    raise BrokerError(
                        f"checkpoint {checkpoint}: the broker refused "
                        f"{counted(refused, 'record')} (see the errors logged above)"
                    )
        except BaseException as exc:
            self.failure = exc
            raise
        for runner in self._runners:
            runner.checkpointed(cut)
        positions = {
            p: ShardPosition(offset + 1, checkpoint, _named(cut))
            for p, offset in markers.items()
            if p in owned
        }
        self.local.submit(entries, positions, generation)
        self.stats.checkpoints += 1
        self.stats.records += len(entries)
        self.stats.last_seconds = time.monotonic() - started
        log.debug(
            "checkpoint %d committed: %s in %.3f s",
            checkpoint,
            counted(len(entries), "record"),
            self.stats.last_seconds,
            extra={
                "checkpoint": checkpoint,
                "records": len(entries),
                "seconds": round(self.stats.last_seconds, 3),
            },
        )

    async def finish(self, timeout: float | None = None) -> bool:
        """Make the final cut and wait until it is committed and written locally.

        False when the broker did not commit it (nor the one before it) within
        ``timeout`` seconds (``None``: the commit's own :data:`COMMIT_TIMEOUT`): the
        drain has a deadline, and a cut left uncommitted is replayed after the restart.
        Only the broker's part is bounded: the local write of a committed cut is let
        finish."""
        previous = self._committing
        if previous is not None and previous.cancelled():
            return False  # given up at the drain's deadline already (see close)
        bound = asyncio.timeout(timeout)
        try:
            async with bound:
                await self.checkpoint()
                if self._committing is not None:
                    await self._committing
        except TimeoutError:
            if not bound.expired():
                raise  # the commit's own timeout: a failure, as in a periodic checkpoint
            return False
        await self.local.drained()
        return True

    async def close(self, timeout: float | None = None) -> None:
        """Wait for the last commit (up to ``timeout`` seconds, then give it up) and the
        local write; abort an open transaction (within the same time, at least 0.1 s:
        otherwise the producer's close or the broker aborts it)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        committing = self._committing
        if committing is not None:
            await asyncio.wait([committing], timeout=timeout)
            committing.cancel()  # (nothing when done) a commit not made by the deadline
            await asyncio.gather(committing, return_exceptions=True)
        await self.local.close()
        if self._exactly_once and self._in_transaction:
            self._in_transaction = False
            left = 10.0 if deadline is None else max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._transactional.abort_transaction(left), left)
            except Exception as exc:  # closing anyway: nothing of it was committed
                log.warning("aborting the open transaction at close: %s", str(exc) or "timed out")

    # -- steps ---------------------------------------------------------------------------

    def _write(
        self, checkpoint: int, entries: list[ChangelogRow], offsets: dict[TopicPartition, int]
    ) -> dict[int, int]:
        """Produce the entries and one marker per partition; the returned marker offsets
        fill in as the broker acknowledges them (by the end of the commit)."""
        sink = self._sink
        topic = self._topic
        cut = _named(offsets)
        marker = Marker(checkpoint, cut, self._restored_from, self._first, self._instance)
        record_headers = headers(checkpoint, cut, marker)
        sink.produce_many(  # (keys spelled as entry_key spells them, without its call)
            topic,
            ((f"{node}#{name}".encode(), value, shard) for node, name, value, shard in entries),
            record_headers,
            reported=not self._exactly_once,  # the transaction's commit vouches for them
        )
        markers: dict[int, int] = {}

        def written(partition: int, offset: int) -> None:
            markers[partition] = offset

        closing = marker_value(marker)
        key = marker_key(self._instance)
        for p in range(self._partitions):
            sink.produce(
                topic,
                key,
                closing,
                record_headers,
                partition=p,
                on_written=written,
            )
        return markers

    def _in_transaction_of(self, tp: TopicPartition) -> bool:
        return any(tp in runner.book.trackers and runner.transactional for runner in self._runners)


def _named(cut: dict[TopicPartition, int]) -> dict[str, int]:
    """A cut as markers and headers name it."""
    return {cut_key(tp.topic, tp.partition): offset for tp, offset in cut.items()}

"""The source loop: records in, backpressure, commits, and a clean drain.

One :class:`SourceRunner` per source connector, as a task on the service's loop::

    consume what is fetched -> route each record -> (too much in flight? pause) ->
    commit offsets whose records are complete -> yield to the agents -> repeat

Backpressure is end to end. When a record fills its target agent's mailbox, only the
record's partition pauses until that mailbox drained to half, its records fetched
meanwhile held in order (:mod:`swimstream.streams.held_back`), while the other
partitions keep flowing: one slow key stalls only the partitions that feed it. When
more than ``max_inflight`` records are unfinished, a sink is crowded, or a command an
agent sent on a record's behalf filled another agent's mailbox (which partition fed
that one is not known), the runner pauses every partition it holds (the client stops
fetching, so memory stays bounded by what was already fetched), waits until the work
in flight halves, and resumes. Commits are asynchronous and happen every
``commit_interval`` seconds or ``commit_every`` records, for offsets whose records and
all their effects are done (:mod:`swimstream.streams.tracking`). On a revoke, the
revoked partitions' final offsets are committed before the partitions are released.

While records come, the runner waits at most :data:`SOURCE_WAIT` for more (the connector
returns as soon as one arrives; the bound is how often an empty loop looks at commits
and readiness, :mod:`swimstream.streams.catch_up`). With nothing in flight the wait
doubles, up to :data:`IDLE_SOURCE_WAIT`, so an idle instance wakes a few times a second
rather than twenty: the first record after a quiet spell is still picked up as soon as
it arrives.

``stop()`` drains: no more fetching, the records in flight finish (up to a deadline),
their offsets are committed, and the connector leaves the group.

With durable state, a :class:`~swimstream.store.checkpoint.Checkpointer` commits instead
(``managed_commits``): it holds the runner at each checkpoint (:meth:`SourceRunner.hold`)
so nothing new is routed while the instance reaches a consistent cut, and commits the
offsets of that cut itself; the service then stops the runner in two steps
(:meth:`SourceRunner.stop_consuming`, the final checkpoint, :meth:`SourceRunner.close`).
A revoke itself commits nothing: :attr:`SourceRunner.before_revoke` (a checkpoint,
waited for) runs first, so the group resumes the partition where the runner stopped
routing it. Where that checkpoint could not be made (a lost partition, a broker that
does not answer), the group resumes at the last checkpoint's cut, while the agents in
memory already hold every record routed since. When the next assignment gives such a
partition back (the range assignor's eager protocol revokes everything at each
rebalance, and mostly hands the same partitions back; a session that expired while the
broker was away loses them all), the records before where it was routed to are dropped
as they are delivered again: applying them a second time would count them twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence

from swimstream.logfields import partition_fields
from swimstream.metrics import MetricsRegistry
from swimstream.streams.catch_up import CatchUp
from swimstream.streams.connector import (
    InboundRecord,
    Rebalance,
    RevokeHook,
    SourceConnector,
    TopicPartition,
)
from swimstream.streams.held_back import HeldBack
from swimstream.streams.router import RecordRouter
from swimstream.streams.sink_pressure import SinkPressure
from swimstream.streams.tracking import OffsetBook, PartitionTracker
from swimstream.text import counted, partition_list

log = logging.getLogger("swimstream.source")

SOURCE_WAIT = 0.05
"""Longest wait for records, in seconds, while records are in flight or just came."""

IDLE_SOURCE_WAIT = 0.25
"""Longest wait for records once nothing is in flight: also how late a stop, or a
commit or pause deferred while the connector waits, may be after a quiet spell."""

KEEP_MEMBERSHIP_AFTER = 10.0
"""Seconds of a backpressure wait after which the runner keeps its connector's group
membership alive (:meth:`SourceConnector.keep_membership`): Kafka's consumer leaves the
group when it has not consumed for ``max.poll.interval.ms`` (300 s by default), and a
full mailbox drains that slowly when its agent takes over 0.6 s a message. Not from the
start: a resume made while such a wait runs is applied when it ends, up to
:data:`KEEP_MEMBERSHIP_POLL` later, which the usual short waits should not pay."""

KEEP_MEMBERSHIP_POLL = 1.0
"""Seconds each of those keep-alive waits lasts."""


class SourceRunner:
    """Feeds one source connector into the plane (see the module docstring)."""

    def __init__(
        self,
        name: str,
        connector: SourceConnector,
        router: RecordRouter,
        registry: MetricsRegistry,
        *,
        max_batch: int = 500,
        max_inflight: int = 20_000,
        commit_interval: float = 0.1,
        commit_every: int = 1000,
        managed_commits: bool = False,
        sinks: SinkPressure | None = None,
    ) -> None:
        self.name = name
        self._sinks = sinks
        """Pauses the source while the sinks hold too many unacknowledged records
        (:mod:`swimstream.streams.sink_pressure`)."""
        self.connector = connector
        self.managed_commits = managed_commits
        """True when a checkpointer commits this runner's offsets."""
        self.transactional = False
        """True when its offsets commit inside the checkpoint's Kafka transaction."""
        self._open = asyncio.Event()
        self._open.set()
        self.book = OffsetBook()
        self._router = router
        self._max_batch = max_batch
        self._max_inflight = max_inflight
        self._commit_interval = commit_interval
        self._commit_every = commit_every
        self._stopping = asyncio.Event()
        self._paused: set[TopicPartition] = set()
        self._routed_at_revoke: dict[TopicPartition, int] = {}
        """Managed commits: where the partitions of the last revoke were routed to."""
        self.on_moved: Callable[[Rebalance], None] | None = None
        """Told of every assignment and revoke once the runner has handled it (durable
        state hands shards over between instances there)."""
        self.before_revoke: RevokeHook | None = None
        """Awaited before a clean revoke, while the partitions are still held and none
        of their records is routed any more (durable state checkpoints there); set
        before :meth:`run`, cleared as the service stops."""
        self.restoring: set[TopicPartition] = set()
        """Partitions paused until their state is restored (:meth:`restored`):
        backpressure must not resume them."""
        self._held: dict[TopicPartition, list[InboundRecord]] = {}
        """Records of restoring partitions, fetched before their pause took hold: routed
        once their state is back (before it, the restore would overwrite their effects,
        their offsets committed all the same)."""
        self._requeued: list[InboundRecord] = []
        self._held_back = HeldBack(router.wait_for_room)
        """Partitions paused until a mailbox one of their records filled has room."""
        self._catch_up = CatchUp(name, connector, self._unrouted)
        self._wait = SOURCE_WAIT
        self.waits = 0
        """Waits for records so far (each one a wake-up of an idle instance)."""
        self._arrived = asyncio.Event()
        self._last_commit = 0.0
        self._since_commit = 0
        self._pauses = registry.counter(
            "source_pauses", "Times a source paused its partitions for backpressure.", source=name
        )
        self._commits = registry.counter("offset_commits", "Offset commits made.", source=name)

    # -- state for health and metrics ---------------------------------------------------

    @property
    def paused(self) -> bool:
        """Whether partitions are paused for backpressure right now (all of them, or
        those waiting for room in a full mailbox)."""
        return bool(self._paused or self._held_back)

    @property
    def held_back(self) -> HeldBack:
        """The partitions waiting for room in a full mailbox, with their records."""
        return self._held_back

    @property
    def ready(self) -> bool:
        """Connected, holding partitions, and caught up with them at least once."""
        connector = self.connector
        return connector.connected and bool(connector.assignment()) and self._catch_up.caught_up

    def lag(self) -> dict[TopicPartition, int]:
        """Records behind the high watermark, per assigned partition whose watermark and
        position are both known (a partition missing here is unknown, not caught up)."""
        return self._catch_up.lag()

    def _unrouted(self) -> dict[TopicPartition, int]:
        """The first offset per partition of the records taken from the connector and
        not routed yet (held back, restoring or requeued): lag counts from there."""
        first = self._held_back.first_offsets()
        for record in (*self._requeued, *(r for held in self._held.values() for r in held[:1])):
            tp = TopicPartition(record.topic() or "", record.partition() or 0)
            first[tp] = min(first.get(tp, record.offset() or 0), record.offset() or 0)
        return first

    # -- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`; then drain."""
        connector = self.connector
        connector.set_rebalance_listener(
            self._on_rebalance, self._before_revoke if self.before_revoke is not None else None
        )
        try:
            await self._consume()
        finally:
            self._held_back.close()  # (their records are read again after a restart)

    async def _consume(self) -> None:
        connector = self.connector
        book = self.book
        held_back = self._held_back
        while not self._stopping.is_set():
            if not self._open.is_set():
                await self._open.wait()  # a checkpoint is making its cut
                continue
            if held_back.room.is_set():
                self._route_held_back()
            records: Sequence[InboundRecord]
            if self._requeued:  # (held while their partitions restored: first)
                records, self._requeued = self._requeued, []
            else:
                records = connector.consume(self._max_batch)
            if not records:
                self._catch_up.check(self.restoring)
                self._commit(force=False)
                self._router.report_held()
                if held_back:
                    await self._wait_for_records_or_room(self._next_wait())
                else:
                    await connector.wait_for_records(self._next_wait())
                continue
            self._wait = SOURCE_WAIT
            self._arrived.set()
            self._route_batch(records)
            self._since_commit += len(records)
            overfull = self._router.overfull()
            if (
                overfull is not None
                or book.inflight > self._max_inflight
                or (self._sinks is not None and self._sinks.crowded())
            ):
                await self._relieve_pressure(overfull)
            self._commit(force=False)
            self._router.report_held()
            await asyncio.sleep(0)  # let the agents work through what just arrived

    async def wait_for_records(self) -> None:
        """Return once the runner takes records from its connector (checkpoints wait
        here, and on the plane, rather than polling an idle instance)."""
        self._arrived.clear()
        await self._arrived.wait()

    async def stop(self, timeout: float) -> int:
        """Drain: stop fetching, let in-flight records finish (up to ``timeout``),
        commit, and close. Returns how many records were still unfinished."""
        unfinished = await self.stop_consuming(timeout)
        await self.close()
        return unfinished

    async def stop_consuming(self, timeout: float) -> int:
        """Stop fetching and let in-flight records finish (up to ``timeout``), committing
        as they do unless a checkpointer commits. Returns how many were unfinished."""
        self._stopping.set()
        self._open.set()
        deadline = time.monotonic() + timeout
        while self.book.inflight and time.monotonic() < deadline:
            self._commit(force=True)
            await asyncio.sleep(0.01)
        self._commit(force=True, final=True)
        self._router.report_held(everything=True)
        unfinished = self.book.inflight
        if unfinished:
            log.warning(
                "%s: %s still in flight at the drain deadline, to be consumed again after "
                "a restart",
                self.name,
                counted(unfinished, "record"),
            )
        return unfinished

    async def close(self, timeout: float | None = None) -> None:
        """Leave the group and release the client, within ``timeout`` seconds."""
        await self.connector.close(timeout)

    # -- checkpoints ----------------------------------------------------------------------

    def hold(self) -> None:
        """Route nothing new until :meth:`release` (a checkpoint is making its cut)."""
        if not self._stopping.is_set():
            self._open.clear()

    def release(self) -> None:
        """Route again."""
        self._open.set()

    def restored(self, partitions: Sequence[TopicPartition]) -> None:
        """The state of ``partitions`` is restored: fetch them again, unless a
        backpressure wait holds the others (its end resumes them with the rest)."""
        self.restoring.difference_update(partitions)
        for tp in partitions:
            self._requeued.extend(self._held.pop(tp, ()))
        self._resume(partitions)

    def _resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Fetch those of ``partitions`` still held again, unless a backpressure wait
        holds the others (its end resumes them with the rest)."""
        held = self.connector.assignment()
        mine = [tp for tp in partitions if tp in held]
        if self._paused:
            self._paused.update(mine)
        elif mine:
            self.connector.resume(mine)

    def checkpointed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """A checkpoint committed: commit this runner's offsets now when they were not
        part of its transaction (a Pulsar source next to a Kafka changelog); either way
        its offsets were committed once more."""
        if not self.managed_commits:
            return
        mine = {tp: o for tp, o in offsets.items() if tp in self.book.trackers}
        if mine:
            if not self.transactional:
                self.connector.commit(mine)
            self._commits.value += 1

    # -- internals ----------------------------------------------------------------------

    def _route_batch(self, records: Sequence[InboundRecord]) -> None:
        """Route a fetched batch, in order: through the router's batch path
        (:meth:`RecordRouter.route_batch`) while no partition of this source is
        restoring or held back, and one record at a time from where that path stops (a
        record filled a mailbox, a partition given back after a revoke has records to
        drop) or when one is: the per-record checks of those states cost the usual
        batch nothing."""
        index = 0
        if not (self.restoring or self._held_back):
            index, tracker, full = self._router.route_batch(records, 0, self.book)
            if full is not None and tracker is not None:
                self._hold_back(tracker.tp, full)
        if index < len(records):
            self._route_each(records, index)

    def _route_each(self, records: Sequence[InboundRecord], start: int) -> None:
        """Route ``records[start:]`` one at a time, holding the records of restoring
        partitions until their state is back, adding those of held-back partitions to
        what they hold, and dropping those a partition given back after a revoke has
        applied already (see the module docstring)."""
        route = self._router.route
        self._router.note_time()  # (for the recency of the agents it runs)
        book = self.book
        restoring = self.restoring
        held_back = self._held_back
        last_key: tuple[str | None, int | None] = (None, None)
        tracker: PartitionTracker | None = None
        replayed_to: int | None = None
        for record in records[start:] if start else records:
            if restoring:
                gained = TopicPartition(record.topic() or "", record.partition() or 0)
                if gained in restoring:
                    self._held.setdefault(gained, []).append(record)
                    continue
            key = (record.topic(), record.partition())
            if key != last_key or tracker is None:
                tp = TopicPartition(key[0] or "", key[1] or 0)
                if held_back and tp in held_back:
                    held_back.add(tp, record)  # (behind the records held already)
                    tracker = None  # (so its next record is looked at here too)
                    continue
                tracker = book.tracker(tp)
                last_key = key
                replayed_to = tracker.replayed_to
            if replayed_to is not None:
                if _applied_already(tracker, record.offset() or 0):
                    continue
                replayed_to = None
            full = route(record, tracker)
            if full is not None:
                self._hold_back(tracker.tp, full)
                tracker = None

    def _hold_back(self, tp: TopicPartition, full_node: str) -> None:
        """A record of ``tp`` filled the mailbox of ``full_node``: pause ``tp`` alone
        until that mailbox has room (:mod:`swimstream.streams.held_back`)."""
        self._held_back.hold(tp, full_node)
        self.connector.pause([tp])
        self._pauses.value += 1

    def _route_held_back(self) -> None:
        """Route the records of the partitions whose mailbox has room now, in order,
        and fetch those partitions again; one whose record fills a mailbox again stays
        paused, holding the rest."""
        route = self._router.route
        resumed: list[TopicPartition] = []
        for tp, records in self._held_back.take_ready():
            tracker = self.book.tracker(tp)
            while records:
                record = records.popleft()
                if tracker.replayed_to is not None and _applied_already(
                    tracker, record.offset() or 0
                ):
                    continue
                full = route(record, tracker)
                if full is not None:
                    self._held_back.hold(tp, full, records)
                    break
            else:
                resumed.append(tp)
        self._resume([tp for tp in resumed if tp not in self.restoring])

    async def _wait_for_records_or_room(self, timeout: float) -> None:
        """Wait for records, or until a mailbox that partitions wait for has room:
        their records are here already, and the agent should not wait for them."""
        waits = {
            asyncio.ensure_future(self.connector.wait_for_records(timeout)),
            asyncio.ensure_future(self._held_back.room.wait()),
        }
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        for wait in done:
            wait.result()  # (the connector's failure, raised here as from its own wait)

    async def _relieve_pressure(self, full_node: str | None) -> None:
        """Pause fetching from every partition until the full mailbox (filled by an
        agent's command) drained, the work in flight halved and the sinks drained to
        half their limit."""
        partitions = sorted(self.connector.assignment())
        if not partitions:
            return
        self._paused = set(partitions)
        self.connector.pause(partitions)
        self._pauses.value += 1
        low = self._max_inflight // 2
        keeping = asyncio.ensure_future(self._keep_membership())
        try:
            if full_node is not None:
                waiting = asyncio.ensure_future(self._router.wait_for_room(full_node))
                stopping = asyncio.ensure_future(self._stopping.wait())
                await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                waiting.cancel()
                stopping.cancel()
            sinks = self._sinks
            while (
                self.book.inflight > low or (sinks is not None and not sinks.eased())
            ) and not self._stopping.is_set():
                if sinks is not None and self.book.inflight > low:
                    sinks.relieve()  # (coalesced lane sinks hold records in flight)
                self._commit(force=False)
                await asyncio.sleep(0.005)
        finally:
            keeping.cancel()
            current = set(self.connector.assignment()) - self.restoring
            current -= self._held_back.partitions  # (until their mailbox has room)
            self.connector.resume(sorted(self._paused & current))
            self._paused = set()

    async def _keep_membership(self) -> None:
        """Keep the group membership alive through a long backpressure wait (see
        :data:`KEEP_MEMBERSHIP_AFTER`); cancelled as the wait ends."""
        await asyncio.sleep(KEEP_MEMBERSHIP_AFTER)
        log.info(
            "%s: paused for backpressure over %g s; polling the group meanwhile",
            self.name,
            KEEP_MEMBERSHIP_AFTER,
        )
        try:
            while True:
                await self.connector.keep_membership(KEEP_MEMBERSHIP_POLL)
        except Exception:  # the connector raises it again from the runner's next call
            pass

    def _next_wait(self) -> float:
        """How long the next empty wait may last: :data:`SOURCE_WAIT` while records are
        in flight or their offsets wait for a commit, doubling up to
        :data:`IDLE_SOURCE_WAIT` once none is."""
        self.waits += 1
        wait = self._wait
        unsettled = self.book.inflight or (self._since_commit and not self.managed_commits)
        self._wait = SOURCE_WAIT if unsettled else min(wait * 2, IDLE_SOURCE_WAIT)
        return wait

    def _commit(self, force: bool, final: bool = False) -> None:
        if self.managed_commits:
            return  # the checkpointer commits consistent cuts
        now = time.monotonic()
        due = now - self._last_commit >= self._commit_interval
        if not (force or due or self._since_commit >= self._commit_every):
            return
        offsets = self.book.to_commit(final)
        self._last_commit = now
        self._since_commit = 0
        if offsets:
            self.connector.commit(offsets)
            self._commits.value += 1

    async def _before_revoke(self, partitions: tuple[TopicPartition, ...]) -> None:
        # Held records of these are routed no more: what the hook commits is all that
        # was routed from them (the connector drops what it buffered of them likewise).
        self._held_back.release(partitions)
        if self.before_revoke is not None:  # (cleared as the service stops)
            await self.before_revoke(partitions)

    def _on_rebalance(self, change: Rebalance) -> Mapping[TopicPartition, int]:
        final = self._rebalanced(change)
        if self.on_moved is not None:
            self.on_moved(change)
        return final

    def _rebalanced(self, change: Rebalance) -> Mapping[TopicPartition, int]:
        if change.assigned:
            self._catch_up.assigned()
            if self._paused:  # gained during a backpressure wait: they wait as well
                self.connector.pause(change.assigned)
                self._paused.update(change.assigned)
            # (debug: the connector logs each rebalance at info, with its group and broker)
            log.debug(
                "%s assigned %s",
                self.name,
                partition_list(change.assigned),
                extra=partition_fields(change.assigned),
            )
            routed, self._routed_at_revoke = self._routed_at_revoke, {}
            for tp in change.assigned:
                if tp in routed:
                    self.book.tracker(tp).replayed_to = routed[tp]
        if not (change.revoked or change.lost):
            return {}
        released = change.revoked
        for tp in released:  # (lost ones are revoked too, flagged)
            self._held.pop(tp, None)  # (their new owner reads them)
        if self._requeued:  # (restored, not routed yet: their new owner reads them too)
            gone = set(released)
            self._requeued = [
                r
                for r in self._requeued
                if TopicPartition(r.topic() or "", r.partition() or 0) not in gone
            ]
        self._held_back.release(released)
        # Lost ones too (the session expired while the broker was away): should another
        # member have gone past them meanwhile, the group resumes beyond and none drops.
        held: dict[TopicPartition, int] = {}
        if self.managed_commits:
            for tp in released:
                tracker = self.book.trackers.get(tp)
                # (given back at the last rebalance, and nothing delivered again since)
                position = None if tracker is None else tracker.routed or tracker.replayed_to
                if position is not None:
                    held[tp] = position
        self._routed_at_revoke = held
        final = self.book.release(released)
        log.debug(
            "%s released %s",
            self.name,
            partition_list(released),
            extra=partition_fields(released),
        )
        if change.lost or self.managed_commits:
            return {}  # with checkpoints, only a checkpoint commits (its state is in the cut)
        if final:  # the connector commits them before it lets the partitions go
            self._commits.value += 1
        return final


def _applied_already(tracker: PartitionTracker, offset: int) -> bool:
    """Whether a record of a partition given back after a revoke is one its agents hold
    already (see the module docstring): those before where it was routed to. When the
    group resumes past that (another member went further meanwhile), none is."""
    floor = tracker.replayed_to
    if floor is None or offset >= floor:
        tracker.replayed_to = None
        return False
    if tracker.routed is None:
        tracker.routed = floor  # the next cut commits what the agents hold
    return True

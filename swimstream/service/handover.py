"""Shards moving between live instances: their state handed over through the changelog.

Several instances of an app share its partitions as one consumer group, and with
durable state shard p (partition p of the source topics) lives in changelog partition p.
When a partition moves (an instance joins, leaves, or fails), its agents' state must
move with it, exactly, as Kafka Streams moves a task's store:

* **The old owner commits, then lets go.** Before a revoke completes, that is before
  librdkafka lets the partitions go, it checkpoints and waits for the commit
  (:meth:`~swimstream.store.checkpoint.Checkpointer.commit_now`, skipped when nothing
  changed since the last cut): no record of the partition is routed after that cut,
  so the group resumes the partition exactly where the committed state ends, as Kafka
  Streams commits a task in ``onPartitionsRevoked``. Then its checkpoints stop storing
  the shard's changes (:meth:`~swimstream.store.tracker.StateTracker.hold`): the group
  resumes the partition at the last checkpoint's cut, so state holding anything since
  would count it twice wherever the partition goes next. If the partition comes back
  (an eager rebalance revokes everything and mostly hands the same partitions back),
  the agents in memory go on, as the source runner's replay rule expects. If it went
  to another member, its agents, their timers and links, and their noted changes are
  dropped from this instance, at rest (no turn under way).
* **The new owner catches up before it reads.** A partition gained is paused at once,
  before a record of it is delivered; the changelog partition is read from where this
  instance's store reflects it to its end, applying the checkpoints the sources
  committed (:func:`~swimstream.store.recovery.recover`); agents in memory whose stored
  state that changed are dropped, to load afresh; the stored timers and links of the
  shard's agents are armed (an instance arms only those of the shards it is assigned,
  so a timer fires on one instance, not on each); the records the restored state
  already holds are skipped as they are delivered again. Then the partition resumes.

The first assignment after a start is a gain like any other: the start's recovery read
the changelog before this member joined, and another instance may have checkpointed
since. Reading a tail with nothing new costs one fetch.

What holds for insights (the ``exactly-once`` guarantee, read with
``isolation.level=read_committed``): a revoke's checkpoint commits, in one transaction,
the shard's state, its source offsets and the insights of every record routed from it,
so across a clean hand-over (scaling out or in, a rolling restart) each record's
insights are published once. (``at-least-once``: the checkpoint commits the offsets
right after the broker acknowledged the insights, so a clean hand-over repeats none
either.) Where no checkpoint is made before the partitions go, the new owner replays
the records since the last committed checkpoint (at most ``processing.commit_interval``
of them), and state stays exact:

* a crash: the old owner's open transaction is aborted (its transaction times out, or
  its next incarnation fences it), so its insights of those records are never
  visible, and the new owner's are the only ones (on Kafka; the embedded Tansu shows
  ``read_committed`` readers the records of aborted transactions);
* a **lost** partition (the session expired while this instance, or its broker, was
  away): another member may own it already, so nothing is committed for it; the old
  owner's next checkpoint still commits the insights of what it routed, and the new
  owner publishes them again;
* a revoke whose checkpoint does not commit within the source's ``revoke_timeout``
  (10 s; a broker that stopped answering), or one met while the broker is known not to
  answer: the partitions go with a warning, as if lost;
* the revoke as the instance leaves the group at its stop comes after the final
  checkpoint, which committed everything already.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from swimstream.errors import AgentRestoreError
from swimstream.runtime import Plane
from swimstream.service.durability import Durability
from swimstream.service.memory import release_freed_memory
from swimstream.store.changelog import cut_key
from swimstream.store.recovery import RecoveryReport, recover
from swimstream.streams import TopicPartition
from swimstream.streams.connector import Rebalance
from swimstream.streams.ingest import SourceRunner
from swimstream.text import counted

log = logging.getLogger("swimstream.handover")


class Handover:
    """Hands shards over between this instance and the others (see the module docstring)."""

    def __init__(
        self,
        durability: Durability,
        plane: Plane,
        source_topics: Sequence[str],
        on_failure: Callable[[BaseException], None],
        release_memory: Callable[[], Awaitable[object]] = release_freed_memory,
    ) -> None:
        self._durability = durability
        self._plane = plane
        self._topics = list(source_topics)
        self._on_failure = on_failure
        self._release_memory = release_memory
        self._runners: list[SourceRunner] = []
        self._released: dict[SourceRunner, set[int]] = {}
        self._restoring: dict[TopicPartition, int] = {}  # partition -> its latest restore
        self._revoking: set[int] = set()
        self._next_restore = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def follow(self, runner: SourceRunner) -> None:
        """Hand over the shards of ``runner``'s partitions as they move."""
        runner.on_moved = lambda change: self._moved(runner, change)
        runner.before_revoke = self._commit_before_revoke
        self._runners.append(runner)

    def restoring(self) -> set[int]:
        """The shards gained whose state is still being read from the changelog."""
        return {tp.partition for tp in self._restoring}

    def settled(self) -> set[int]:
        """The shards this instance holds with their state restored and its changes
        stored: its store holds their changelog partitions whole up to its own next
        marker there (checkpoints move these shards' positions)."""
        runners = self._runners
        assigned = {tp.partition for runner in runners for tp in runner.connector.assignment()}
        return assigned - self.restoring() - self._durability.tracker.held

    def revoking(self) -> set[int]:
        """The shards a revoke is committing before they go: a command taken for one
        now would land after the revoke's cut, in state no checkpoint stores."""
        return set(self._revoking)

    async def close(self, timeout: float | None = None) -> None:
        """Follow no more moves, and stop restores still running (the service stops:
        its final checkpoint comes next, and leaving the group revokes everything).

        A restore's cancel waits for its changelog reader's close, which waits out the
        broker request in flight (10 s on a broker that stopped answering): the stop
        waits ``timeout`` seconds at most (what is left of the drain) and leaves the
        rest behind, as the drain leaves the broker clients behind at its deadline."""
        for runner in self._runners:
            runner.on_moved = runner.before_revoke = None
        self._revoking.clear()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if not tasks:
            return
        await asyncio.wait(tasks, timeout=timeout)
        left = [task for task in tasks if not task.done()]
        if left:
            log.warning(
                "%s left behind at the drain deadline, waiting for the broker",
                counted(len(left), "hand-over task"),
            )

    # -- rebalances (on the loop's thread, inside the consumer's callback) --------------

    async def _commit_before_revoke(self, revoked: tuple[TopicPartition, ...]) -> None:
        """Checkpoint and wait for its commit while the partitions are still held (see
        the module docstring); nothing to do before checkpoints start, as nothing was
        routed yet."""
        self._revoking.update(tp.partition for tp in revoked)  # (until the revoke is done)
        checkpointer = self._durability.checkpointer
        if checkpointer is not None:
            await checkpointer.commit_now()

    def _moved(self, runner: SourceRunner, change: Rebalance) -> None:
        tracker = self._durability.tracker
        if change.revoked:
            shards = {tp.partition for tp in change.revoked}
            self._revoking -= shards
            tracker.hold(shards)
            if change.incremental:  # only moving partitions are revoked: they left
                self._leave(shards)
            else:  # the assignment that follows says which come back
                self._released.setdefault(runner, set()).update(shards)
            return
        released = self._released.pop(runner, set())
        gained = {tp.partition for tp in change.assigned}
        # (A partition whose restore had not ended when it was revoked is not back: its
        # agents in memory may be the stale ones the restore was to replace.)
        back = (released & gained) - {tp.partition for tp in self._restoring}
        tracker.release(back)
        gone = released - gained
        if gone:
            self._leave(gone)
        new = [tp for tp in change.assigned if tp.partition not in back]
        if not new:
            return
        runner.connector.pause(new)
        runner.restoring.update(new)
        self._next_restore += 1
        for tp in new:
            self._restoring[tp] = self._next_restore
        self._spawn(self._restore(runner, new, self._next_restore))

    def _leave(self, shards: set[int]) -> None:
        shard_of = self._durability.shard_of
        log.info(
            "shards %s moved to another instance: their agents leave memory",
            sorted(shards),
            extra={"shards": sorted(shards)},
        )

        def leave() -> None:
            def gone(node: str) -> bool:
                return shard_of(node) in shards

            self._forget(gone)
            self._durability.tracker.release(shards)

        self._spawn(self._at_rest(leave))

    # -- a gained partition's restore -----------------------------------------------------

    async def _restore(
        self, runner: SourceRunner, gained: list[TopicPartition], number: int
    ) -> None:
        durability = self._durability
        shards = {tp.partition for tp in gained}
        try:
            reader = durability.reader
            sources = [TopicPartition(t, p) for t in self._topics for p in range(durability.shards)]
            offsets = await reader.committed_offsets(durability.config.consumer_group, sources)
            report = await recover(
                durability.committed,
                reader,
                durability.topic,
                durability.shards,
                offsets,
                checked=frozenset(sources),
                shards=shards,
            )
            await self._at_rest(lambda: self._install(runner, gained, report))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "restoring the state of shards %s failed: %r",
                sorted(shards),
                exc,
                extra={"shards": sorted(shards)},
            )
            self._on_failure(exc)
            return
        mine = [tp for tp in gained if self._restoring.get(tp) == number]  # none newer
        for tp in mine:
            del self._restoring[tp]
        runner.restored(mine)
        log.info(
            "shards %s caught up with the changelog: %s read, %s applied (%s of "
            "uncommitted ones skipped), %s changed, in %.1f s",
            sorted(shards),
            counted(report.records, "record", grouped=True),
            counted(report.applied_checkpoints, "checkpoint"),
            counted(report.skipped_records, "record", grouped=True),
            counted(len(report.changed), "agent", grouped=True),
            report.seconds,
            extra={
                "shards": sorted(shards),
                "records": report.records,
                "seconds": round(report.seconds, 3),
                "restored_cuts": report.cuts,
            },
        )
        # What the restore held is free now, but malloc keeps it (see swimstream.service.memory).
        await self._release_memory()

    def _install(
        self, runner: SourceRunner, gained: list[TopicPartition], report: RecoveryReport
    ) -> None:
        """Drop what memory holds of the agents the restore changed, arm the stored
        timers and links of the shards' agents, load the changed agents that agents
        here link to (each syncs its links, so their replicas take the restored state
        now, not at its next change), and skip the records the restored state holds."""
        if report.changed:
            self._forget(report.changed.__contains__)
        held = [tp for tp in gained if tp in runner.connector.assignment()]
        shards = {tp.partition for tp in held}
        shard_of = self._durability.shard_of
        self._durability.arm(self._plane, lambda node: shard_of(node) in shards)
        links = self._plane.links
        for node in sorted(report.changed):
            if shard_of(node) in shards and links.linked_lanes(node) is not None:
                try:
                    self._plane.activate_existing(node)
                except AgentRestoreError:  # (logged once; its records say why)
                    continue
        for tp in held:
            cut = report.cuts.get(tp.partition, {}).get(cut_key(tp.topic, tp.partition))
            if cut is not None:
                runner.book.tracker(tp).replayed_to = cut
        # (Held back if it was revoked while this restore ran, and handed back since.)
        self._durability.tracker.release(shards)

    # -- helpers --------------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task that :meth:`close` cancels."""
        task = asyncio.get_running_loop().create_task(work, name="swimstream-handover")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _forget(self, select: Callable[[str], bool]) -> None:
        self._plane.forget_agents(select)
        self._durability.tracker.forget(select)
        assert self._durability.store is not None
        self._durability.store.forget(select)

    async def _at_rest(self, change: Callable[[], None]) -> None:
        checkpointer = self._durability.checkpointer
        if checkpointer is None:  # not started yet: nothing runs that could see it
            change()
        else:
            await checkpointer.at_rest(change)

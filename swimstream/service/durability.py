"""Durable state for one instance: the local store, recovery and checkpoints, wired.

Start-up: open ``<store.path>/<instance id>.sqlite``; read the sources' committed
offsets; recover the changelog's committed tail into the store; give the plane a
:class:`~swimstream.store.durable.DurableAgentStore`; re-arm stored timers and register
stored links (agents themselves load lazily; with Kafka sources, shard by shard as the
group assigns them, see :mod:`swimstream.service.handover`). Then checkpoints run until the service
stops, and a final one after the sources stopped and the agents were put away.

Faults of the local store are loud and never turn into wrong answers:

* unusable at start (corrupt, damaged in an earlier run, wrong schema, or found damaged
  by the restore's own write): the file is moved aside and state rebuilt from the
  changelog into a fresh one;
* its directory not writable, or the restore's write failing without damage (a full
  disk; the file is kept as it is): state is rebuilt from the changelog into memory;
* damaged while running (a checksum or SQLite error on read): the read fails, the
  plane crashes so that no checkpoint commits past the record that needed the agent
  (see :meth:`~swimstream.runtime.passivation.Passivation._load`), the service stops
  (exit status 1), and the next start finds the file marked and rebuilds.

In the first two cases the instance runs on correct state but ``/healthz`` stays red,
naming the fault, until it restarts with a healthy store. A store whose state is of
checkpoints the sources never committed (at least once, a commit that never landed; or
offsets reset by hand) is no fault: it is set aside (``<file>.ahead``) with a warning
and rebuilt from the changelog, which holds what was committed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from pathlib import Path

from swimstream.config import AppConfig
from swimstream.errors import StoreError, StoreLockedError, StoreWriteError
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Plane
from swimstream.runtime.agent_record import LINKS, TIMERS, decode_links, decode_timers
from swimstream.service.instance_lock import InstanceLock
from swimstream.store.checkpoint import Checkpointer, CoalescedSink, OtherSink
from swimstream.store.committed import CommittedStore, MemoryCommitted
from swimstream.store.durable import DurableAgentStore
from swimstream.store.recovery import RecoveryReport, recover, shards_ahead
from swimstream.store.sqlite import SQLiteStore
from swimstream.store.tracker import StateTracker
from swimstream.streams import ChangelogReader, ChangelogSink, TopicPartition
from swimstream.streams.ingest import SourceRunner

log = logging.getLogger("swimstream.store")


class Durability:
    """One instance's durable state (see the module docstring)."""

    def __init__(
        self,
        config: AppConfig,
        instance_id: str,
        reader: ChangelogReader,
        shards: int,
        shard_of: Callable[[str], int],
        cluster: str = "",
        largest_record: int | None = None,
    ) -> None:
        """``largest_record``: the most bytes a changelog record may hold, keys and
        values (None: no limit); a name whose record would hold more is not stored."""
        self.config = config
        self.instance_id = instance_id
        self.topic = config.changelog_topic
        self.path = Path(config.store.path) / f"{instance_id}.sqlite"
        self.shards = shards
        self._reader = reader
        self._shard_of = shard_of
        self.fault: str | None = None
        """Why the local store is not in use as it should be (health reports it)."""
        self.store: DurableAgentStore | None = None
        self.recovery: RecoveryReport | None = None
        self.checkpointer: Checkpointer | None = None
        self._tracker: StateTracker | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._lock = InstanceLock(config.app, instance_id, cluster)
        self._largest_record = largest_record
        self._fresh_run = config.broker.kind == "embedded"
        """An earlier run's store is still to be set aside (the first open only: a
        restore tried again after a broker that did not answer finds the file the
        first try made, and ``.previous`` holds the earlier run's, kept)."""

    async def open(
        self,
        source_partitions: Sequence[TopicPartition],
        stopping: Callable[[], bool] = lambda: False,
    ) -> DurableAgentStore:
        """Open the local store (or its fallback) and recover the committed tail; raises
        :class:`RestoreStopped` when ``stopping()`` turns true before the end.

        ``source_partitions`` are the Kafka sources' partitions: the consumer group's
        offsets for them are what checkpoints are checked against (a Pulsar source's are
        not kept by any broker; see :func:`recover`)."""
        self._lock.acquire()  # (a second live instance of this id would lose state)
        try:
            opened = committed = self._open_local()
        except BaseException:
            self._lock.release()
            raise
        try:
            offsets = await self._reader.committed_offsets(
                self.config.consumer_group, source_partitions
            )
            ahead = shards_ahead(committed.positions(), offsets, frozenset(source_partitions))
            recovering = functools.partial(
                recover,
                reader=self._reader,
                topic=self.topic,
                partitions=self.shards,
                committed_sources=offsets,
                stopping=stopping,
                checked=frozenset(source_partitions),
            )
            committed = await self._restored(committed, recovering)
            if ahead and committed is opened:  # (a fallback was rebuilt whole already)
                # (Only after that first restore, which refuses another changelog's store.)
                log.warning(
                    "the local store holds state of shards %s from checkpoints whose source "
                    "offsets were never committed (a commit that did not land, or offsets "
                    "reset): it is set aside and rebuilt from the changelog",
                    ahead,
                    extra={"shards": sorted(ahead)},
                )
                committed.close()
                committed = await self._restored(self._fresh(), recovering)
        except BaseException:
            committed.close()
            self._lock.release()
            raise
        self.store = DurableAgentStore(committed)
        return self.store

    async def _restored(
        self,
        committed: CommittedStore,
        recovering: Callable[[CommittedStore], Awaitable[RecoveryReport]],
    ) -> CommittedStore:
        """Recover into ``committed``, or into its fallback when the restore's write
        fails: the store that now holds the restored state.

        Damage the open did not see is marked by that write: the file is set aside and
        rebuilt. Any other failure to write (a full disk, an I/O error) is no damage:
        the file is kept as it is (its positions move only with a restore's last write,
        so it still says where its state stands), and a fresh file would likely fail
        the same way, so the state is rebuilt in memory, as for an unwritable
        directory, rather than stop this start and every later one."""
        try:
            self.recovery = await recovering(committed)
        except StoreError as exc:
            if not isinstance(committed, SQLiteStore):
                raise
            if committed.suspect_marker.exists():
                committed.close()
                fallback: CommittedStore = self._rebuilt(str(exc))
            elif isinstance(exc, StoreWriteError):
                committed.close()
                self._report(f"{exc}; running on state rebuilt from the changelog in memory")
                fallback = MemoryCommitted()
            else:  # (a store of another changelog: the user must look, not a fallback)
                raise StoreError(
                    f"{exc}. The local store is {self.path}: if this is the app's cluster "
                    "and its changelog topic was deleted, that file holds the only copy of "
                    "the state, and the sources' committed offsets are past the records "
                    "that made it; moved away (to start from what the changelog holds), "
                    "that state is gone for good"
                ) from exc
            return await self._restored(fallback, recovering)
        return committed

    def _open_local(self) -> CommittedStore:
        if self._fresh_run and self.path.exists():
            self._set_aside_previous_run()
        self._fresh_run = False
        try:
            store = SQLiteStore(self.path, self.topic).open()
        except StoreLockedError:
            raise  # (sound, and held by someone: not to be set aside as damaged)
        except StoreError as exc:
            return self._rebuilt(str(exc))
        owner = store.changelog()
        if owner != self.topic:
            # Two apps given one mesh.instance_id and one store.path share the file: the
            # other's positions in this changelog would skip its records (state lost),
            # and its agents would be served as this app's. Not set aside: it is that
            # app's, and valid.
            store.close()
            raise StoreError(
                f"the local store {self.path} holds the state of {owner}, not of "
                f"{self.topic}: another app with mesh.instance_id {self.instance_id!r} "
                "keeps its store in this store.path; give each app a store.path of its own"
            )
        return store

    def _rebuilt(self, problem: str) -> CommittedStore:
        """A fresh store in place of an unusable one (moved aside), or memory."""
        aside = self._move_aside()
        if aside is not None:
            try:
                store = SQLiteStore(self.path, self.topic).open()
            except StoreError as exc:
                problem = f"{problem}; a fresh store failed too: {exc}"
            else:
                self._report(f"{problem}; moved to {aside.name} and rebuilt from the changelog")
                return store
        self._report(f"{problem}; running on state rebuilt from the changelog in memory")
        return MemoryCommitted()

    def _fresh(self) -> CommittedStore:
        """An empty store in place of one whose state is ahead of the sources."""
        if self._move_aside(self.path.with_name(f"{self.path.name}.ahead")) is None:
            return self._rebuilt("the local store, ahead of the sources, could not be set aside")
        try:
            return SQLiteStore(self.path, self.topic).open()
        except StoreError as exc:
            return self._rebuilt(str(exc))

    def _set_aside_previous_run(self) -> None:
        """The embedded broker keeps everything in memory, so each run starts on an empty
        changelog: a store left by an earlier run reflects a broker that is gone, and
        recovery would refuse it as another changelog's. Keep it as ``.previous`` (for
        ``swimstream inspect``) and start empty, as the broker does."""
        aside = self.path.with_name(f"{self.path.name}.previous")
        for older in (aside, *(aside.with_name(aside.name + s) for s in ("-wal", "-shm"))):
            older.unlink(missing_ok=True)
        if self._move_aside(aside) is not None:
            log.warning(
                "the embedded broker starts empty at every run: the store of the last run "
                "is moved to %s and state starts empty",
                aside,
            )

    def _move_aside(self, aside: Path | None = None) -> Path | None:
        """Move a damaged store (and its WAL files) out of the way, to ``aside`` (by
        default ``<file>.corrupt-<time>``); None if impossible."""
        if aside is None:
            stamp = time.strftime("%Y%m%dT%H%M%S")
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        try:
            if not os.access(self.path.parent, os.W_OK):
                return None
            if self.path.exists():
                self.path.rename(aside)
            for suffix in ("-wal", "-shm"):
                extra = self.path.with_name(self.path.name + suffix)
                if extra.exists():
                    extra.rename(aside.with_name(aside.name + suffix))
            marker = self.path.with_name(self.path.name + ".suspect")
            if marker.exists():
                marker.unlink()
            return aside
        except OSError:
            return None

    def _report(self, fault: str) -> None:
        self.fault = fault
        log.error("local store fault: %s", fault)

    def attach(self, plane: Plane, arm_stored: bool = True) -> None:
        """Follow the plane's changes; with ``arm_stored``, re-arm every stored timer and
        register every stored link (else :meth:`arm` does it shard by shard)."""
        assert self.store is not None
        self._tracker = StateTracker(self.store, self._shard_of, self._largest_record)
        self._tracker.attach(plane)
        if arm_stored:
            self.arm(plane, lambda node: True)

    def arm(self, plane: Plane, select: Callable[[str], bool]) -> None:
        """Re-arm the stored timers of the agents ``select`` names that have none pending,
        and register their stored links that are not open."""
        committed = self.committed
        for node, value in committed.named(TIMERS):
            if select(node) and not plane.timers.for_node(node):
                plane.restore_timers(node, decode_timers(value))
        for node, value in committed.named(LINKS):
            if select(node):
                plane.restore_links(node, decode_links(value)[1])

    @property
    def tracker(self) -> StateTracker:
        """What changed since the last checkpoint (once :meth:`attach` ran)."""
        assert self._tracker is not None
        return self._tracker

    @property
    def reader(self) -> ChangelogReader:
        return self._reader

    @property
    def committed(self) -> CommittedStore:
        """Committed state: the local store (or its fallback), once opened."""
        assert self.store is not None
        return self.store.committed

    def shard_of(self, node_uri: str) -> int:
        return self._shard_of(node_uri)

    def start_checkpoints(
        self,
        plane: Plane,
        sink: ChangelogSink,
        runners: Sequence[SourceRunner],
        exactly_once: bool,
        group_metadata: Callable[[], object] | None,
        on_failure: Callable[[BaseException], None],
        flush_sinks: Sequence[CoalescedSink] = (),
        other_sinks: Sequence[OtherSink] = (),
        delivery_failures: Callable[[], int] = lambda: 0,
        owned_shards: Callable[[], Collection[int]] | None = None,
    ) -> None:
        """Begin the first checkpoint (and transaction) and checkpoint periodically;
        ``on_failure`` is told if a checkpoint fails (the instance must then stop).
        ``flush_sinks`` hand coalesced insights to the producer at every cut;
        ``other_sinks`` (another protocol's) are flushed before a cut commits, and
        ``delivery_failures`` (their failed records so far) must not have moved.
        ``owned_shards`` names the shards a consumer group gives this instance, their
        state restored (:meth:`~swimstream.service.handover.Handover.settled`); None:
        no group shares them out, every shard is this instance's (as :meth:`attach`
        arms every stored timer)."""
        assert self.store is not None and self._tracker is not None
        # Checkpoint ids are unique across incarnations (wall milliseconds x 1000, then a
        # sequence), so the work of a checkpoint a crash cut short is never confused with
        # a later one's, and never below any id seen before.
        last = max((p.checkpoint for p in self.store.committed.positions().values()), default=0)
        if self.recovery is not None:
            last = max(last, self.recovery.last_checkpoint)
        first = max(int(time.time() * 1000) * 1000, last + 1)
        restored_from = self.recovery.committed_through if self.recovery else last
        log.info(
            "checkpoints start at %d (committed through %d)",
            first,
            restored_from,
            extra={"checkpoint": first, "first_checkpoint": first},
        )
        self.checkpointer = Checkpointer(
            plane=plane,
            tracker=self._tracker,
            store=self.store,
            sink=sink,
            changelog_topic=self.topic,
            partitions=self.shards,
            runners=runners,
            exactly_once=exactly_once,
            interval=self.config.processing.commit_interval,
            group_metadata=group_metadata,
            first_checkpoint=first,
            restored_from=restored_from,
            instance=self.instance_id,
            flush_sinks=flush_sinks,
            other_sinks=other_sinks,
            delivery_failures=delivery_failures,
            owned_shards=owned_shards or (lambda: range(self.shards)),
        )
        self.checkpointer.start()
        self._task = asyncio.get_running_loop().create_task(
            self.checkpointer.run(self._stopping), name="swimstream-checkpoints"
        )

        def failed(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                on_failure(task.exception())  # type: ignore[arg-type]

        self._task.add_done_callback(failed)

    def current_checkpoint(self) -> int:
        """The id of the checkpoint being built now (insights carry it)."""
        return 0 if self.checkpointer is None else self.checkpointer.current

    def register_gauges(self, registry: MetricsRegistry) -> None:
        """Checkpoints on /metrics: how many, the changelog records they wrote, the last
        one's duration (0 until checkpoints start)."""

        def stat(field: str) -> Callable[[], float]:
            def read() -> float:
                made = self.checkpointer
                return float(getattr(made.stats, field)) if made is not None else 0.0

            return read

        registry.counted(
            "checkpoints", "Checkpoints committed since the start.", stat("checkpoints")
        )
        registry.counted(
            "checkpoint_records",
            "Changelog records the committed checkpoints wrote.",
            stat("records"),
        )
        registry.gauge(
            "checkpoint_last_seconds",
            "Seconds the last checkpoint took to commit.",
            stat("last_seconds"),
        )

    @property
    def failed(self) -> BaseException | None:
        """Why checkpoints stopped, if they did."""
        if self._task is not None and self._task.done() and not self._task.cancelled():
            return self._task.exception()
        return None

    async def finish(self, final: bool = True, timeout: float | None = None) -> None:
        """Stop the periodic checkpoints, take the final one (unless not ``final``: the
        plane stopped with work left), wait for the local write.

        The broker's part is bounded by ``timeout`` (what is left of the drain): a
        SIGTERM while the broker does not answer waited for the commit's own 60 s
        (``COMMIT_TIMEOUT``) and exited 1 after some 80 s. A final checkpoint the
        broker did not commit in time is no failure, as a crash is none: its offsets
        were not committed, the last committed checkpoint stands, and the restart
        replays the records since from there (state stays exact)."""
        self._stopping.set()
        deadline = None if timeout is None else time.monotonic() + timeout

        def left() -> float | None:
            return None if deadline is None else max(0.0, deadline - time.monotonic())

        task = self._task
        if task is not None:
            # The periodic loop may be waiting for a commit the broker does not answer.
            await asyncio.wait([task], timeout=left())
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        checkpointer = self.checkpointer
        if checkpointer is None:
            return
        try:
            if self.failed is None and final and not await checkpointer.finish(left()):
                log.warning(
                    "the final checkpoint was not committed within the drain (%g s, "
                    "processing.drain_timeout): the broker does not answer; the last "
                    "committed checkpoint stands, and the records since are read again "
                    "after the restart",
                    self.config.processing.drain_timeout,
                )
        finally:
            await checkpointer.close(left())

    def close(self) -> None:
        """Close the local store, and let another instance of this id start."""
        if self.store is not None:
            self.store.committed.close()
        self._lock.release()

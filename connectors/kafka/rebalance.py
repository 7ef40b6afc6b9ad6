"""Group rebalances, from librdkafka's callbacks to the service's listener.

librdkafka calls ``on_assign``/``on_revoke``/``on_lost`` from inside ``consume`` (or
``close``) on the thread that called it, which is always the source's worker thread
(:mod:`connectors.kafka.source`). :class:`RebalanceRelay` runs the part the service sees
(its listener, and every change to what :class:`Membership` says this member holds) on
the loop thread through a :class:`~connectors.kafka.loop.LoopBridge`, and waits there for
the listener's answer; then, back on the worker thread and before the callback returns
(that is, before librdkafka lets the partitions go), it commits the listener's offsets
synchronously, unless the broker is known not to answer: librdkafka's synchronous
commit waits for the coordinator for ever, so those offsets are given up (the records
are read again).

A clean revoke first runs the listener's ``before_revoke`` coroutine on the loop, the
worker waiting for it: the buffered records of the revoked partitions are dropped, so
none is routed after it, and the service commits what it routed (a checkpoint, with its
own transaction) while the partitions are still this member's, as Kafka Streams commits
a task in ``onPartitionsRevoked``. The loop runs on meanwhile, and the worker holds the
consumer, so the coroutine must not need the consumer (the source defers or answers
from snapshots). The wait is bounded by ``revoke_timeout``, and skipped when the broker
is known not to answer: past it the coroutine is cancelled (what it shielded, such as a
commit under way, goes on) and the revoke proceeds as without it, with a warning; the
next owner then starts from the last committed offsets. A lost partition gets no such
call: another member may own it already.

On assignment the partitions are assigned *before* the listener runs, so that a
listener that pauses new partitions (to restore their state first) pauses partitions
the consumer holds, before a single record of theirs is delivered. A partition gained
is fetched unless the listener pauses it, as with Kafka's Java consumer: librdkafka
remembers a pause through a revoke, so a released partition is resumed once unassigned.

With the default ``range`` strategy the protocol is eager: every rebalance revokes every
partition this member holds, then assigns its new share, which may include some of the
same partitions. Offsets must be committed for all of them at the revoke, since any may
go to another member.

Nothing escapes a callback into librdkafka: confluent-kafka answers an exception raised
in a rebalance callback by discarding the records of the ``consume`` call that ran it,
after the position already moved past them. A listener's exception is kept in
:attr:`Membership.failure` instead, and the source raises it from its next call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka.deferred import DeferredCalls, kafka_partitions
from connectors.kafka.health import ConnectionHealth
from connectors.kafka.loop import LoopBridge, LoopGoneError
from connectors.kafka.records import RecordBuffer
from swimstream.logfields import Log, partition_fields
from swimstream.streams.connector import Rebalance, RebalanceListener, RevokeHook, TopicPartition
from swimstream.text import counted, offset_list, partition_list


@dataclass(slots=True)
class Membership:
    """What this member holds. Changed on the event loop's thread only; the fetch thread
    reads ``assigned`` and ``epoch``, which are replaced, never mutated."""

    assigned: frozenset[TopicPartition] = frozenset()
    end_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """Positions learned from end-of-partition events, for partitions that delivered
    nothing: the only way to know an empty partition's position without ListOffsets."""
    epoch: int = 0
    """Bumped on every assignment change, so a fetch can tell that one happened during it."""
    busy: bool = False
    """A rebalance callback is running: the consumer must not be consumed from (its
    listener may only pause, resume, commit and read)."""
    group_metadata: object | None = None
    """The consumer's group metadata as of the last assignment (for transactions)."""
    failure: BaseException | None = None
    """What a listener raised, for the source to raise from its next call."""


class RebalanceRelay:
    """librdkafka's rebalance callbacks, relayed to the listener on the loop thread."""

    def __init__(
        self,
        membership: Membership,
        buffer: RecordBuffer,
        deferred: DeferredCalls,
        bridge: LoopBridge,
        health: ConnectionHealth,
        *,
        cooperative: bool,
        revoke_timeout: float,
        logger: Log,
        where: str,
    ) -> None:
        self.listener: RebalanceListener | None = None
        self.before_revoke: RevokeHook | None = None
        self._revoke_timeout = revoke_timeout
        self._membership = membership
        self._buffer = buffer
        self._deferred = deferred
        self._bridge = bridge
        self._health = health
        self._cooperative = cooperative
        self._log = logger
        self._where = where

    # -- librdkafka's callbacks (any thread) --------------------------------------------

    def on_assign(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Assign, tell the listener, then apply calls it made while we held the consumer."""
        gained = _partitions(partitions)
        self._log.debug("%s: assignment served %s", self._where, self._thread())
        self._membership.busy = True
        try:
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            metadata = consumer.consumer_group_metadata()
            self._bridge.call(lambda: self._assigned(gained, metadata))
            self._apply_deferred(consumer)
        except LoopGoneError:
            self._log.error(
                "%s: event loop gone; assignment of %s not reported",
                self._where,
                partition_list(gained),
                extra=partition_fields(gained),
            )
        except BaseException as exc:  # kept for the source to raise; see the module docstring
            self._fail(exc)
        finally:
            self._membership.busy = False

    def on_revoke(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Ask the listener for final offsets, commit them, then let the partitions go."""
        self._release(consumer, partitions, lost=False)

    def on_lost(self, consumer: Consumer, partitions: list[KafkaPartition]) -> None:
        """Tell the listener the partitions are gone; commit nothing (another member may
        already be past these offsets)."""
        self._release(consumer, partitions, lost=True)

    # -- internals ----------------------------------------------------------------------

    def _release(self, consumer: Consumer, partitions: list[KafkaPartition], lost: bool) -> None:
        gone = _partitions(partitions)
        self._log.debug(
            "%s: %s served %s", self._where, "loss" if lost else "revocation", self._thread()
        )
        self._membership.busy = True
        try:
            dropped = 0 if lost or not gone else self._before_revoke(gone)
            final: dict[TopicPartition, int] = {}
            try:
                final = self._bridge.call(lambda: self._revoked(gone, lost, dropped))
            except LoopGoneError:
                self._log.error(
                    "%s: event loop gone; releasing %s without committing",
                    self._where,
                    partition_list(gone),
                    extra=partition_fields(gone),
                )
            earlier = self._deferred.take_commits(gone)
            if not lost:
                self._commit_now(consumer, {**earlier, **final})
            self._apply_deferred(consumer)
            if self._cooperative:
                consumer.incremental_unassign(partitions)
            else:
                consumer.unassign()
            # librdkafka keeps a partition's pause through its revoke and assignment: one
            # paused for backpressure when revoked would come back paused, and nothing
            # would resume it (the service forgets a revoked partition's pauses).
            try:
                consumer.resume(partitions)
            except KafkaException as exc:
                self._log.warning(
                    "%s: resuming released %s failed: %s", self._where, partition_list(gone), exc
                )
        except BaseException as exc:  # kept for the source to raise; see the module docstring
            self._fail(exc)
        finally:
            self._membership.busy = False

    def _before_revoke(self, gone: tuple[TopicPartition, ...]) -> int:
        """Await the hook on the loop, up to the revoke timeout, after dropping the
        buffered records of ``gone`` (so none is routed after what the hook commits);
        returns how many were dropped. Whatever goes wrong, the revoke goes on as
        without a hook: the next owner reads again from the last committed offsets."""
        hook = self.before_revoke
        if hook is None:
            return 0
        where, partitions, fields = self._where, partition_list(gone), partition_fields(gone)
        if not self._health.connected:  # its commit would wait for the broker in vain
            self._log.warning(
                "%s: the broker does not answer: revoking %s without committing first",
                where,
                partitions,
                extra=fields,
            )
            return 0

        dropped = 0  # (what ``prepare`` dropped counts even if the hook then times out)

        async def prepare() -> None:
            nonlocal dropped
            dropped = self._buffer.discard(gone)
            await hook(gone)

        try:
            self._bridge.wait(prepare(), self._revoke_timeout)
        except TimeoutError:
            self._log.warning(
                "%s: committing before the revoke of %s took over %g s; revoking them "
                "without waiting (the next owner may read records again)",
                where,
                partitions,
                self._revoke_timeout,
                extra=fields,
            )
        except LoopGoneError:
            self._log.error(
                "%s: event loop gone; revoking %s without committing",
                where,
                partitions,
                extra=fields,
            )
        except Exception as exc:
            self._fail(exc)
        return dropped

    def _assigned(self, gained: tuple[TopicPartition, ...], metadata: object) -> None:
        membership = self._membership
        held = membership.assigned | set(gained) if self._cooperative else frozenset(gained)
        membership.assigned = frozenset(held)
        membership.epoch += 1
        membership.group_metadata = metadata
        for tp in gained:
            membership.end_offsets.pop(tp, None)
        self._log.info(
            "%s: assigned %s",
            self._where,
            partition_list(gained) or "nothing",
            extra=partition_fields(gained),
        )
        # (An eager protocol's empty assignment is told too: it settles what the revoke
        # before it took away.)
        if self.listener is not None and (gained or not self._cooperative):
            try:
                self.listener(Rebalance(assigned=gained, incremental=self._cooperative))
            except Exception as exc:
                self._fail(exc)

    def _revoked(
        self, gone: tuple[TopicPartition, ...], lost: bool, dropped: int
    ) -> dict[TopicPartition, int]:
        final: Mapping[TopicPartition, int] = {}
        if self.listener is not None and gone:
            try:
                final = self.listener(
                    Rebalance(revoked=gone, lost=lost, incremental=self._cooperative)
                )
            except Exception as exc:
                self._fail(exc)
        membership = self._membership
        membership.assigned = membership.assigned - set(gone)
        membership.epoch += 1
        for tp in gone:
            membership.end_offsets.pop(tp, None)
        dropped += self._buffer.discard(gone)
        if gone:
            self._log.info(
                "%s: %s %s (%s dropped)",
                self._where,
                "lost" if lost else "revoked",
                partition_list(gone),
                counted(dropped, "fetched record"),
                extra=partition_fields(gone),
            )
        if lost:
            return {}
        return {tp: offset for tp, offset in final.items() if tp in gone and offset >= 0}

    def _commit_now(self, consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        if not self._health.connected:
            # librdkafka would wait for the coordinator for ever (see connectors.kafka.loop).
            self._log.warning(
                "%s: not committing %s before releasing them: the broker does not answer; "
                "they will be read again from the last committed offsets",
                self._where,
                offset_list(offsets),
                extra=partition_fields(offsets),
            )
            return
        try:
            results = consumer.commit(
                offsets=kafka_partitions(offsets.keys(), offsets), asynchronous=False
            )
        except KafkaException as exc:
            self._log.warning(
                "%s: committing %s before releasing them failed (%s); they "
                "will be read again from the last committed offsets",
                self._where,
                offset_list(offsets),
                exc,
                extra=partition_fields(offsets),
            )
            return
        failed = [f"{r.topic}[{r.partition}]: {r.error}" for r in results if r.error]
        if failed:
            self._log.warning(
                "%s: committing before release failed for %s", self._where, "; ".join(failed)
            )

    def _apply_deferred(self, consumer: Consumer) -> None:
        if self._deferred:
            for failure in self._deferred.apply(consumer, self._membership.assigned):
                self._log.warning("%s: %s", self._where, failure)

    def _thread(self) -> str:
        return "on the loop thread" if self._bridge.on_loop_thread else "in a worker thread"

    def _fail(self, exc: BaseException) -> None:
        self._log.error("%s: handling a rebalance failed: %r", self._where, exc)
        if self._membership.failure is None:
            self._membership.failure = exc


def _partitions(partitions: list[KafkaPartition]) -> tuple[TopicPartition, ...]:
    return tuple(TopicPartition(p.topic, p.partition) for p in partitions)

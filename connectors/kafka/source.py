"""KafkaSource: the service's source connector over confluent-kafka's Consumer.

One consumer per source, one member of the app's consumer group, offsets committed only
through :meth:`KafkaSource.commit` (never automatically, never the consumer's own
positions). Settings and why: :mod:`connectors.kafka.settings`.

Threading model
    Everything the service calls runs on the event loop's thread and never waits for the
    network, except where noted. The consumer is consumed from in the source's own
    worker thread only, never on the loop: librdkafka runs the rebalance callbacks
    inside whichever ``consume`` serves them, and a callback on the loop thread could
    not wait for anything the loop does, such as a checkpoint before a revoke.
    :meth:`~KafkaSource.consume` hands over records the worker already buffered, and
    when fewer than the batch asked for remain, starts the worker's next fetch
    (``consume(n, 0)``, n up to :data:`FETCH_RECORDS` or the batch if larger), so under
    load the next records are fetched while the service routes the last ones, two thread
    hand-offs per fetch rather than per batch. :meth:`~KafkaSource.wait_for_records`
    blocks in the worker (``consume(1, timeout)``, then whatever else is already there)
    and buffers what it gets, so the next ``consume`` returns it first, in order.

    While that worker is inside the consumer, the loop does not call into it:
    confluent-kafka 2.16 serializes cross-thread calls into a Consumer, so a loop call
    would stall until the fetch ends, or for ever if the fetch is itself waiting for the
    loop. ``pause``/``resume``/``commit`` made meanwhile are deferred and applied by the
    worker (:mod:`connectors.kafka.deferred`); ``high_watermarks``/``positions`` answer
    from the snapshot the worker took at the end of its last fetch, and
    ``consumer_group_metadata`` from the assignment's.

    Rebalance callbacks thus always run in the worker; the listener and every change of
    the assignment run on the loop thread, the worker waiting for them
    (:mod:`connectors.kafka.rebalance`), and the listener's offsets are committed
    synchronously before the callback returns. Before a revoke, the listener's
    ``before_revoke`` coroutine runs on the loop, the worker waiting for it up to
    ``revoke_timeout``; the loop goes on meanwhile (agents, sinks, a checkpoint). A
    listener may pause, resume, commit and read the source; a ``consume`` from inside it
    returns only buffered records.

    The default ``range`` strategy is eager: each rebalance first revokes everything this
    member holds (the listener must hand back final offsets for all of it), then assigns
    the new share, which may contain the same partitions again.

Static membership
    With ``instance_id`` the member is static (``group.instance.id``). :meth:`close`
    still revokes (the listener runs, its offsets are committed) but sends no LeaveGroup:
    the group keeps the partitions for this identity until ``session.timeout.ms`` passes,
    so an instance that comes back within that time, even after a crash, gets the same
    partitions without the others rebalancing. The price is on a clean stop: nobody takes
    over those partitions until the session expires. Measured on Tansu with the 10 s
    session: a static member had its partitions 8 s after joining, first time or after a
    restart; after a ``kill -9`` it was also about 8 s, where a dynamic member
    blocks the group for 18 s. A dynamic member leaves at close and is reassigned at once
    (5 s for the next join on Tansu, which holds joins for half the session timeout).
    Either way ``close`` gives up after ``close_timeout`` seconds when the broker does
    not answer, rather than hang the instance's shutdown (see :mod:`connectors.kafka.loop`).

Liveness
    ``connected`` follows :mod:`connectors.kafka.health`: error events and per-second
    broker statistics, because a broker that hangs closes no socket. Both are delivered
    from inside the worker's fetches, so the flag is only as fresh as the service's
    polling (which never stops while the source runs).

Measured throughput
    What ``consume`` can hand to Python: 500k JSON records of about 45 bytes over 4
    partitions of the embedded Tansu, read by ``consume(500)`` (falling back to
    ``wait_for_records(0.05)`` when it returns nothing) and counted, timed from the
    assignment on, with the defaults of :mod:`connectors.kafka.settings`: 0.43-0.52 s,
    that is **1.0-1.15 million records/s** (three runs; Python 3.11, 2 AMD EPYC cores,
    broker on the same machine). ``consume`` used to call librdkafka on the loop thread
    when nothing was buffered: 0.33-0.36 s (1.4-1.5 million records/s) in runs taken
    in turn with those. The difference is the worker: each fetch of 2,000 costs two
    thread hand-offs (about 0.1 ms), and the records are made on one thread and read
    on another, under one GIL. Where routing costs far more than fetching it hardly
    shows: ``bench/e2e_bench.py``'s swimstream rows, three rounds each, gave a median of
    60k against 65k events/s in memory and 35k against 34k durable; four runs of each,
    taken in turn, gave 59k against 59k in memory (runs on this machine vary by a
    third: ``bench/e2e_findings.md``). Larger fetches did not help (5,000 or 10,000: slower).
    With librdkafka's default ``fetch.queue.backoff.ms`` (1000) the same read took
    2.3 s (214k records/s); ``fetch.wait.max.ms`` 50 or 100 made no difference to
    throughput, only to latency. Reproduce with
    ``SWIMSTREAM_BENCH=1 pytest tests/connectors/test_kafka_source.py -k consume_rate -s``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka.deferred import DeferredCalls, kafka_partitions, resume_fetching
from connectors.kafka.errors import CLIENT_LOG, KafkaBrokerError, describe, translate
from connectors.kafka.health import ConnectionHealth
from connectors.kafka.loop import DaemonExecutor, LoopBridge
from connectors.kafka.progress import Progress, positions
from connectors.kafka.rebalance import Membership, RebalanceRelay
from connectors.kafka.records import RecordBuffer, split_events
from connectors.kafka.settings import (
    CONSUMER_DEFAULTS,
    CONSUMER_OWNED,
    Settings,
    is_cooperative,
    merge,
    stall_seconds,
)
from connectors.kafka.topics import check_topics
from swimstream.errors import BrokerError
from swimstream.logfields import FieldsLog
from swimstream.streams.connector import (
    InboundRecord,
    RebalanceListener,
    RevokeHook,
    TopicPartition,
)
from swimstream.text import offset_list

log = logging.getLogger("swimstream.kafka.source")

FETCH_RECORDS = 2000
"""Records a fetch takes at most, or the service's batch if larger: a fetch costs two
thread hand-offs, whatever it brings."""
_METADATA_TIMEOUT = 10.0
_WORKER_GRACE = 0.05
"""Seconds a wait gives the worker it started beyond ``timeout``. The worker's ``consume``
returns by itself at the timeout, a fraction of a millisecond after the loop's own timer
(a few on a busy machine): a wait that ended at the timer left the worker running, and
the next wait returned as soon as it finished, two wake-ups of an idle source for one
(up to 12 instead of 8 in 2 s)."""


@dataclass(slots=True)
class _Fetched:
    """What one fetch brought back from the worker thread."""

    records: list[Message]
    end_offsets: dict[TopicPartition, int]
    epoch: int
    """The membership epoch when the fetch began: a change means a rebalance ran in it."""
    progress: Progress
    waited: bool
    """Whether the fetch waited for a record (one that did not may have come too soon)."""


class KafkaSource:
    """A member of ``group_id`` consuming ``topics`` (see the module docstring).

    Args:
        bootstrap: ``host:port[,host:port...]``.
        group_id: the consumer group (the app's name).
        topics: the source topics; each must exist when :meth:`open` runs.
        instance_id: a stable identity for static membership (``group.instance.id``).
        settings: librdkafka settings over :data:`~connectors.kafka.settings.CONSUMER_DEFAULTS`;
            the ones swimstream owns are refused with a ConfigError.
        offset_reset: where a partition without a committed offset starts
            (``earliest`` or ``latest``).
        close_timeout: seconds :meth:`close` waits for the broker before abandoning the
            consumer (a commit to an unreachable coordinator never returns by itself).
        revoke_timeout: seconds a revoke waits for the listener's ``before_revoke``
            before it lets the partitions go all the same.
    """

    reports_watermarks = True
    """Every fetch response carries its partition's high watermark."""

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Iterable[str],
        *,
        instance_id: str | None = None,
        settings: Settings | None = None,
        offset_reset: str = "earliest",
        close_timeout: float = 30.0,
        revoke_timeout: float = 10.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.close_timeout = close_timeout
        self.revoke_timeout = revoke_timeout
        self.group_id = group_id
        self.topics = tuple(topics)
        self.instance_id = instance_id
        owned: dict[str, object] = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": offset_reset,
            "client.id": f"swimstream-{group_id}" + (f"-{instance_id}" if instance_id else ""),
        }
        if instance_id:
            owned["group.instance.id"] = instance_id
        self._config = merge(CONSUMER_DEFAULTS, settings, CONSUMER_OWNED, owned, client="source")
        self._where = f"Kafka source of group {group_id!r} at {bootstrap}"
        self._log = FieldsLog(log, group=group_id, broker=bootstrap)
        self._health = ConnectionHealth(self._log, self._where, stall_seconds(self._config))
        self._membership = Membership()
        self._buffer = RecordBuffer()
        self._deferred = DeferredCalls()
        self._listener: RebalanceListener | None = None
        self._before_revoke: RevokeHook | None = None
        self._consumer: Consumer | None = None
        self._relay: RebalanceRelay | None = None
        self._executor: DaemonExecutor | None = None
        self._worker: asyncio.Future[Any] | None = None  # the worker holds the consumer
        self._fetch_size = FETCH_RECORDS
        self._failure: BaseException | None = None
        self._progress = Progress()
        self._closed = False
        self.partition_counts: dict[str, int] = {}
        """Partitions of each source topic, as the broker reported them at open."""

    def __repr__(self) -> str:
        return f"<KafkaSource {self.group_id} {list(self.topics)} at {self.bootstrap}>"

    # -- life ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Check that every topic exists, then subscribe (the group join completes in
        the background, during the following waits)."""
        if self._consumer is not None or self._closed:
            raise BrokerError(f"{self._where} was opened already")
        bridge = LoopBridge()
        self._relay = RebalanceRelay(
            self._membership, self._buffer, self._deferred, bridge, self._health,
            cooperative=is_cooperative(self._config), revoke_timeout=self.revoke_timeout,
            logger=self._log, where=self._where,
        )  # fmt: skip
        self._relay.listener, self._relay.before_revoke = self._listener, self._before_revoke
        config = {
            **self._config,
            "error_cb": self._health.on_error,
            "stats_cb": self._health.on_stats,
            "on_commit": self._on_commit,
            "logger": CLIENT_LOG,
        }
        try:
            consumer = Consumer(config)
        except KafkaException as exc:
            raise translate(exc, f"creating the consumer of {self._where}") from exc
        self._executor = DaemonExecutor(f"swimstream-kafka-source-{self.group_id}")
        loop = asyncio.get_running_loop()
        try:
            self.partition_counts = await loop.run_in_executor(
                self._executor, check_topics, consumer, self.topics, self.bootstrap,
                _METADATA_TIMEOUT,
            )  # fmt: skip
            consumer.subscribe(
                list(self.topics),
                on_assign=self._relay.on_assign,
                on_revoke=self._relay.on_revoke,
                on_lost=self._relay.on_lost,
            )
        except BaseException:
            await loop.run_in_executor(self._executor, consumer.close)
            self._executor.shutdown(wait=False)
            raise
        self._consumer = consumer

    async def close(self, timeout: float | None = None) -> None:
        """Revoke (the listener's offsets are committed), leave the group, release the
        client, waiting for the broker up to ``timeout`` seconds, or ``close_timeout``
        when that is sooner. Static members do not leave: see the module docstring."""
        if self._closed:
            return
        self._closed = True
        consumer, executor = self._consumer, self._executor
        if consumer is None or executor is None:
            return
        bound = self.close_timeout if timeout is None else min(timeout, self.close_timeout)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        if (waiting := self._worker) is not None:
            # A fetch returns within its timeout, but a revoke's commit inside it waits
            # for the broker, which may have frozen since the revoke began.
            done, _ = await asyncio.wait([waiting], timeout=bound)
            if not done:
                self._let_go(executor)
                self._abandoned("the consumer was still busy with the broker", bound)
                return
        closing = loop.run_in_executor(executor, consumer.close)
        self._worker = closing
        self._let_go(executor)
        done, _ = await asyncio.wait([closing], timeout=max(0.0, deadline - loop.time()))
        if not done:
            self._abandoned("the broker did not let the consumer leave", bound)
            return
        self._membership.assigned = frozenset()
        self._worker = None
        try:
            closing.result()
        except KafkaException as exc:
            raise translate(exc, f"closing {self._where}") from exc

    def _let_go(self, executor: DaemonExecutor) -> None:
        """Nothing touches the consumer any more (its worker thread, a daemon, ends with
        its last call or with the process)."""
        executor.shutdown(wait=False)
        self._consumer = None

    def _abandoned(self, why: str, bound: float) -> None:
        """Say that a consumer the broker held up was given up (its worker stays marked
        busy)."""
        self._membership.assigned = frozenset()
        self._log.error(
            "%s: %s within %g s; abandoned it. Offsets not committed by now will be read "
            "again by the next owner",
            self._where,
            why,
            bound,
        )

    # -- records ------------------------------------------------------------------------

    def consume(self, max_records: int) -> Sequence[InboundRecord]:
        """Buffered records, up to ``max_records``, without waiting; when fewer than that
        remain buffered, the worker starts fetching the next ones (see the module
        docstring)."""
        self._raise_failure()
        records = self._buffer.take(max_records)
        self._fetch_size = max(max_records, FETCH_RECORDS)
        if len(self._buffer) < max_records:
            self._start_fetch(0.0)
        return cast("list[InboundRecord]", records)

    async def wait_for_records(self, timeout: float) -> None:
        """Wait in the worker thread until librdkafka has records (or an event), or
        ``timeout`` passed (and the worker came back, up to :data:`_WORKER_GRACE` later).
        A wait abandoned by cancellation, or by an earlier call's shorter timeout,
        finishes in the background and its records stay buffered."""
        self._raise_failure()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._buffer and self._consumer is not None:
            worker = self._worker
            limit = deadline - loop.time()  # a worker already running may wait longer
            if worker is None:
                worker = self._start_fetch(limit) if limit > 0 else None
                if worker is None:  # (time is up, or the source is closing)
                    return
                limit += _WORKER_GRACE
            await asyncio.wait([worker], timeout=limit)
            self._raise_failure()
            # Only a fetch that did not wait (started by ``consume``) and brought
            # nothing leaves time to wait for; any other ends the wait.
            if not worker.done() or worker.exception() or worker.result().waited:
                return

    async def keep_membership(self, timeout: float) -> None:
        """A wait in the worker, for ``timeout`` seconds, while every partition the
        runner holds is paused (backpressure): librdkafka takes a member that has not
        consumed for ``max.poll.interval.ms`` (300 s) for dead and leaves the group,
        and serves rebalances only inside a consume. A paused partition delivers
        nothing, so the wait returns nothing but what partitions gained or resumed
        meanwhile bring, buffered. With records buffered already (under load, the
        prefetch the runner could not route before it paused) it takes one record at
        most, so the buffer grows by no more than one a call: sleeping instead, as it
        did with a fetch's worth buffered, let the member be taken for dead while the
        records it held waited for a slow agent."""
        self._raise_failure()
        size = 1 if self._buffer else self._fetch_size
        worker = self._start_fetch(timeout, size)
        if worker is not None:
            await asyncio.wait([worker], timeout=timeout + _WORKER_GRACE)
        self._raise_failure()

    def _start_fetch(
        self, timeout: float, size: int | None = None
    ) -> asyncio.Future[_Fetched] | None:
        """Start the worker's next fetch, of ``size`` records at most (the fetch size
        unless given), unless one runs (or the consumer is closed)."""
        if self._worker is not None or self._consumer is None or self._closed:
            return self._worker
        loop = asyncio.get_running_loop()
        worker = loop.run_in_executor(
            self._executor, self._fetch, self._consumer, timeout, size or self._fetch_size
        )
        worker.add_done_callback(self._fetched)
        self._worker = worker
        return worker

    def _fetch(self, consumer: Consumer, timeout: float, size: int) -> _Fetched:
        """The worker's half of a fetch (runs in the worker thread): up to ``size``
        records, waiting up to ``timeout`` seconds for the first one. Every rebalance
        callback runs in here."""
        epoch = self._membership.epoch
        self._apply_deferred(consumer)
        if timeout > 0:
            messages = consumer.consume(1, timeout)
            if messages:
                messages.extend(consumer.consume(size - 1, 0))
        else:
            messages = consumer.consume(size, 0)
        self._apply_deferred(consumer)
        split = split_events(messages)
        self._report_errors(split.errors)
        progress = Progress.read(consumer, self._membership.assigned)
        return _Fetched(split.records, split.end_offsets, epoch, progress, timeout > 0)

    def _fetched(self, worker: asyncio.Future[_Fetched]) -> None:
        """The loop's half of a fetch: buffer what the worker brought back."""
        self._worker = None
        exc = worker.exception()
        if exc is not None:
            if isinstance(exc, KafkaException):
                self._failure = translate(exc, f"waiting for records of {self._where}")
            else:
                self._failure = exc
            return
        fetched = worker.result()
        self._buffer.extend(self._take(fetched.records, fetched.end_offsets, fetched.epoch))
        self._progress = fetched.progress
        if self._deferred and self._consumer is not None:
            self._apply_deferred(self._consumer)

    # -- the group ----------------------------------------------------------------------

    def set_rebalance_listener(
        self, listener: RebalanceListener, before_revoke: RevokeHook | None = None
    ) -> None:
        """Called with every assignment change, on the event loop's thread;
        ``before_revoke`` awaited before a revoke, up to ``revoke_timeout`` (see the
        module docstring)."""
        self._listener, self._before_revoke = listener, before_revoke
        if self._relay is not None:
            self._relay.listener, self._relay.before_revoke = listener, before_revoke

    def assignment(self) -> set[TopicPartition]:
        """The partitions this member holds now."""
        return set(self._membership.assigned)

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        """Stop fetching ``partitions`` (librdkafka drops what it prefetched for them;
        records already buffered here are still delivered, and so, at times, are those
        a fetch running as the pause was made brings, as an assignment's pause made
        from the listener may see)."""
        self._flow(partitions, pause=True)

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        """Fetch ``partitions`` again, from the position the service reached, at once
        (see :func:`~connectors.kafka.deferred.resume_fetching`)."""
        self._flow(partitions, pause=False)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offset to read per partition, asynchronously. Partitions this
        member no longer holds are skipped: their new owner commits them."""
        held = {tp: offset for tp, offset in offsets.items() if tp in self._membership.assigned}
        if not held:
            return
        if self._consumer is None or self._worker is not None:
            self._deferred.commit(held)
            return
        try:
            self._consumer.commit(offsets=kafka_partitions(held.keys(), held))
        except KafkaException as exc:
            raise translate(exc, f"committing offsets of {self._where}") from exc

    def consumer_group_metadata(self) -> object:
        """The group's metadata for ``send_offsets_to_transaction`` (current as of the
        last assignment)."""
        if self._consumer is not None and self._worker is None:
            self._membership.group_metadata = self._consumer.consumer_group_metadata()
        if self._membership.group_metadata is None:
            raise BrokerError(f"{self._where} has not joined its group yet")
        return self._membership.group_metadata

    # -- progress -----------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Records fetched and not yet handed over by :meth:`consume`."""
        return len(self._buffer)

    def high_watermarks(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the high watermark the last fetch reported."""
        held = self._read_progress()
        return {tp: high for tp, high in self._progress.high_watermarks.items() if tp in held}

    def positions(self) -> dict[TopicPartition, int]:
        """Per assigned partition, the offset of the next record the service will get."""
        held = self._read_progress()
        end_offsets = self._membership.end_offsets
        return positions(self._progress, end_offsets, self._buffer.first_offsets(), held)

    @property
    def connected(self) -> bool:
        """False while a broker this member needs does not answer."""
        return self._consumer is not None and self._health.connected

    # -- internals ----------------------------------------------------------------------

    def _read_progress(self) -> frozenset[TopicPartition]:
        """Refresh the progress snapshot when the consumer is free; the held partitions."""
        held = self._membership.assigned
        if self._consumer is not None and self._worker is None and not self._membership.busy:
            self._progress = Progress.read(self._consumer, held)
        return held

    def _take(
        self, records: list[Message], end_offsets: dict[TopicPartition, int], epoch: int
    ) -> list[Message]:
        """Accept what a consume call brought: without the records (and end events) of
        partitions revoked while it ran, which the new owner reads again."""
        membership = self._membership
        if membership.epoch != epoch:
            held = membership.assigned
            records = [
                r for r in records if TopicPartition(r.topic() or "", r.partition() or 0) in held
            ]
            end_offsets = {tp: offset for tp, offset in end_offsets.items() if tp in held}
        if end_offsets and log.isEnabledFor(logging.DEBUG):  # (a fetch to the end has one)
            self._log.debug("%s: end of %s", self._where, offset_list(end_offsets))
        membership.end_offsets.update(end_offsets)
        if records:
            self._health.on_activity()
        return records

    def _flow(self, partitions: Sequence[TopicPartition], *, pause: bool) -> None:
        held = [tp for tp in partitions if tp in self._membership.assigned]
        if not held:
            return
        if self._consumer is None or self._worker is not None:
            (self._deferred.pause if pause else self._deferred.resume)(held)
            return
        try:
            if pause:
                self._consumer.pause(kafka_partitions(held))
            else:
                resume_fetching(self._consumer, kafka_partitions(held))
        except KafkaException as exc:
            what = "pausing" if pause else "resuming"
            raise translate(exc, f"{what} {held} of {self._where}") from exc

    def _apply_deferred(self, consumer: Consumer) -> None:
        if self._deferred:
            for failure in self._deferred.apply(consumer, self._membership.assigned):
                self._log.warning("%s: %s", self._where, failure)

    def _report_errors(self, errors: list[KafkaError]) -> None:
        """Log error events (any thread); a fatal one fails the source's next call."""
        for error in errors:
            self._health.on_error(error)
            if error.fatal() and self._failure is None:
                self._failure = KafkaBrokerError(
                    f"{self._where} failed for good: {describe(error)}",
                    code=error.name(),
                    fatal=True,
                )

    def _raise_failure(self) -> None:
        failure = self._failure or self._membership.failure
        if failure is not None:
            self._failure = self._membership.failure = None
            raise failure

    def _on_commit(self, error: KafkaError | None, partitions: list[KafkaPartition]) -> None:
        # Asynchronous commits report here; a failed one is superseded by the next.
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            self._health.errors.report(error)
        failed = [p for p in partitions if p.error is not None]
        if failed:
            self._log.warning("%s: commit failed for %s", self._where, failed)

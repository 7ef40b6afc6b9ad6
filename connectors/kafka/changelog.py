"""Reading a changelog topic for recovery: by partition, to its end, outside any group.

Recovery reads each changelog partition from where the local store left off to the end,
before the instance consumes anything. "The end" comes from end-of-partition events
(``enable.partition.eof``), not from ListOffsets, which Tansu answers with the base
offset of the last batch (see :mod:`connectors.embedded.kafka`). The watermarks are
used only to estimate progress for the progress line.

The consumer never joins a group and commits nothing: the offsets it reads from are
the local store's. :meth:`KafkaChangelogReader.committed_offsets` asks the app's group
for its committed source offsets the same way (an OffsetFetch, no join), so recovery
can tell committed checkpoints from ones a crash cut short.

Fetching runs in a worker thread a batch at a time; the records are handed over on the
loop thread, so the caller's callback may touch the loop's state freely.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import cast

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka.errors import CLIENT_LOG, UNREACHABLE, translate
from connectors.kafka.records import split_events
from connectors.kafka.settings import Settings, applicable
from swimstream.errors import BrokerError, StoreError
from swimstream.logfields import partition_fields
from swimstream.streams.connector import InboundRecord, TopicPartition

log = logging.getLogger("swimstream.kafka.changelog")

BATCH = 10_000
FETCH_WAIT = 0.05
"""Seconds one ``consume`` waits. librdkafka's batch consume returns at a full batch or
this timeout, whichever comes first, not when the end-of-partition events arrive: with
half a second, reading an empty changelog of 4 partitions took 0.56 s, at every start
and every time shards are gained; with this, 0.16 to 0.21 s (and 200,000 records 0.35 s
instead of 0.72 s), on the embedded Tansu."""
QUIET_END = 3.0
"""Seconds without a record or an end-of-partition event after which a quiet partition
is checked against its high watermark: at it, the partition is taken as read to its end
(the end event is not guaranteed for an out-of-range start); beyond it, the local store
is ahead of this changelog and belongs to another one (a recreated topic, another
cluster), which is an error rather than a wait without end."""
PREFETCH_RECORDS = BATCH
"""Records per partition librdkafka keeps fetched ahead of the read
(``queued.min.messages``; its default, 100,000, is a whole hand-over's tail). A read
consumes a batch at a time, so one batch ahead keeps it busy. Every read makes a
consumer of its own, whose threads are new ones, and glibc attaches new threads to its
arenas in turn (up to 8 per core): each read's fetched records were allocated in
another arena, which kept the memory once freed. Restoring 400,000 records of 2
partitions 7 times in a row (``bench/restore_memory.py``), resident memory grew from
275 to 445 MB with librdkafka's defaults, a new arena of 40 to 63 MB at most rounds,
and from 257 to 289 MB with this and :data:`PREFETCH_KBYTES`, each round as fast."""
PREFETCH_KBYTES = 16_384
"""Kilobytes librdkafka keeps fetched ahead of the read (``queued.max.messages.kbytes``,
64 MiB by default): a bound where records are large. Alone it does not bound
records as small as a hand-over's (tens of bytes each): the soak under churn ended at
941 MB with it at 16 MiB, against 972 MB without."""
_METADATA_TIMEOUT = 10.0
COMMITTED_ATTEMPTS = 5
"""Answers with a partition's error before the committed offsets count as unreadable."""
COMMITTED_PAUSE = 0.5
"""Seconds before the second attempt; each later one waits that much longer."""


class KafkaChangelogReader:
    """Implements :class:`~swimstream.streams.connector.ChangelogReader` over Kafka."""

    def __init__(self, bootstrap: str, settings: Settings | None = None) -> None:
        self.bootstrap = bootstrap
        self._settings = applicable(settings or {}, "consumer")

    def _consumer(self, group: str) -> Consumer:
        return Consumer(self._consumer_config(group))

    def _consumer_config(self, group: str) -> dict[str, object]:
        """What librdkafka is given: the user's settings (security ones included, as
        every client of the instance needs them), under the reader's own."""
        return {
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 50,
            "queued.min.messages": PREFETCH_RECORDS,
            "queued.max.messages.kbytes": PREFETCH_KBYTES,
            **self._settings,
            "bootstrap.servers": self.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            # Its log lines go where every other client's go, rather than raw to stderr.
            "logger": CLIENT_LOG,
        }

    async def read(
        self,
        topic: str,
        start: Mapping[int, int],
        on_records: Callable[[Sequence[InboundRecord]], None],
        progress: Callable[[int, int], None] | None = None,
    ) -> dict[int, int]:
        consumer = self._consumer(f"swimstream-changelog-reader-{uuid.uuid4().hex[:8]}")
        try:
            listed_partitions = await asyncio.to_thread(self._partitions, consumer, topic)
            partitions = [p for p in listed_partitions if p in start]
            positions = {p: start[p] for p in partitions}
            listed = await asyncio.to_thread(self._listed_ends, consumer, topic, positions)
            expected = sum(max(0, listed[p] - positions[p]) for p in partitions)
            consumer.assign(
                [
                    KafkaPartition(topic, p, o if o > 0 else OFFSET_BEGINNING)
                    for p, o in positions.items()
                ]
            )
            unfinished = set(partitions)
            heard = dict.fromkeys(partitions, time.monotonic())  # last record or end event
            done = 0
            while unfinished:
                messages = await asyncio.to_thread(consumer.consume, BATCH, FETCH_WAIT)
                split = split_events(messages)
                if split.errors:
                    raise BrokerError(
                        f"reading changelog {topic} at {self.bootstrap}: {split.errors[0]}",
                        unreachable=split.errors[0].code() in UNREACHABLE,
                    )
                now = time.monotonic()
                for record in split.records:
                    positions[record.partition() or 0] = (record.offset() or 0) + 1
                    heard[record.partition() or 0] = now
                for tp, offset in split.end_offsets.items():
                    positions[tp.partition] = max(positions[tp.partition], offset)
                    unfinished.discard(tp.partition)
                quiet = [p for p in unfinished if now - heard[p] > QUIET_END]
                if quiet:
                    ended = await asyncio.to_thread(
                        self._quiet_ends, consumer, topic, quiet, positions
                    )
                    unfinished.difference_update(ended)
                    for p in quiet:
                        heard[p] = now
                if split.records:
                    on_records(cast("list[InboundRecord]", split.records))
                    done += len(split.records)
                    if progress is not None:
                        progress(done, max(expected, done))
            if progress is not None:
                progress(done, done)
            log.info(
                "changelog %s read to %s; the broker listed its ends as %s at the start",
                topic,
                positions,
                listed,
                extra={
                    "topic": topic,
                    "read_to": positions,
                    "listed_ends": listed,
                },
            )
            return positions
        except KafkaException as exc:
            failure = translate(exc, f"reading changelog {topic} at {self.bootstrap}")
            # A partition listed at the read's start and unknown now: the client lost the
            # broker (stopped, restarting) and with it the partition's leader. The start
            # waits for it; a topic deleted meanwhile is said by the next try's listing.
            failure.unreachable = failure.unreachable or failure.code == "_UNKNOWN_PARTITION"
            raise failure from exc
        finally:
            await asyncio.to_thread(consumer.close)

    async def committed_offsets(
        self, group: str, partitions: Sequence[TopicPartition]
    ) -> dict[TopicPartition, int]:
        if not partitions:
            return {}
        consumer = self._consumer(group)
        try:
            listed = [KafkaPartition(tp.topic, tp.partition) for tp in partitions]
            for attempt in range(1, COMMITTED_ATTEMPTS + 1):
                answer = await asyncio.to_thread(consumer.committed, listed, _METADATA_TIMEOUT)
                failed = [kp for kp in answer if kp.error is not None]
                if not failed:
                    return {
                        TopicPartition(kp.topic, kp.partition): kp.offset
                        for kp in answer
                        if kp.offset >= 0
                    }
                problem = f"{failed[0].topic}[{failed[0].partition}]: {failed[0].error}"
                log.warning(
                    "reading the committed offsets of group %r (attempt %d of %d): %s",
                    group,
                    attempt,
                    COMMITTED_ATTEMPTS,
                    problem,
                    extra={
                        "group": group,
                        **partition_fields((f.topic, f.partition) for f in failed),
                    },
                )
                if attempt < COMMITTED_ATTEMPTS:
                    await asyncio.sleep(COMMITTED_PAUSE * attempt)
            # A partition's offset silently missing would make recovery skip every
            # checkpoint that covered it: stop instead.
            raise BrokerError(f"reading the committed offsets of group {group!r}: {problem}")
        except KafkaException as exc:
            raise translate(exc, f"reading the committed offsets of group {group!r}") from exc
        finally:
            await asyncio.to_thread(consumer.close)

    @staticmethod
    def _partitions(consumer: Consumer, topic: str) -> list[int]:
        metadata = consumer.list_topics(topic, timeout=_METADATA_TIMEOUT)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise BrokerError(f"changelog topic {topic} does not exist")
        return sorted(described.partitions)

    def _quiet_ends(
        self, consumer: Consumer, topic: str, quiet: list[int], positions: Mapping[int, int]
    ) -> list[int]:
        """The quiet partitions whose position reached the high watermark.

        The reader's watermark is the last stable offset (it reads committed records):
        a transaction another producer opened before this instance's last commit holds
        it back below the store's position until it ends (Tansu answers 0 while one is
        open). So only a position beyond the log's own end (read uncommitted) says the
        store belongs to another changelog; short of it, the read waits for the
        transaction, whose end brings the end-of-partition event."""
        ended = []
        for partition in quiet:
            _, high = consumer.get_watermark_offsets(
                KafkaPartition(topic, partition), timeout=_METADATA_TIMEOUT
            )
            if positions[partition] > high:
                log_end = self._log_end(topic, partition)
                if positions[partition] > log_end:
                    raise StoreError(
                        f"the local store reflects changelog {topic}[{partition}] up to offset"
                        f" {positions[partition]}, but the topic ends at {log_end}: the store"
                        " belongs to another changelog (a recreated topic or another cluster)"
                    )
                log.info(
                    "changelog %s[%d]: an open transaction holds its committed end at %d,"
                    " before offset %d: waiting for it to end",
                    topic,
                    partition,
                    high,
                    positions[partition],
                    extra={"topic": topic, "partition": partition, "offset": positions[partition]},
                )
            elif positions[partition] == high:
                log.info(
                    "changelog %s[%d]: no end-of-partition event, but nothing after offset %d"
                    " for %.0f s: taken as read to its end",
                    topic,
                    partition,
                    positions[partition],
                    QUIET_END,
                    extra={"topic": topic, "partition": partition, "offset": positions[partition]},
                )
                ended.append(partition)
        return ended

    def _log_end(self, topic: str, partition: int) -> int:
        """The partition's high watermark, open transactions included."""
        config = self._consumer_config(f"swimstream-changelog-end-{uuid.uuid4().hex[:8]}")
        consumer = Consumer({**config, "isolation.level": "read_uncommitted"})
        try:
            return int(
                consumer.get_watermark_offsets(
                    KafkaPartition(topic, partition), timeout=_METADATA_TIMEOUT
                )[1]
            )
        finally:
            consumer.close()

    @staticmethod
    def _listed_ends(
        consumer: Consumer, topic: str, positions: Mapping[int, int]
    ) -> dict[int, int]:
        """Each partition's end as ListOffsets reports it: for the progress line, and
        beside where reading ended in the log (Tansu may report less than the end)."""
        listed = {}
        for partition in positions:
            _, high = consumer.get_watermark_offsets(
                KafkaPartition(topic, partition), timeout=_METADATA_TIMEOUT
            )
            listed[partition] = high
        return listed

"""Consumer calls postponed while another thread is inside the consumer.

confluent-kafka (2.16) serializes calls into one ``Consumer`` across threads: a call from
the event loop waits, without a timeout, for a call in progress on another thread (the
source's blocking fetch) to return. Worse, that fetch may be waiting for the loop itself,
to run a rebalance listener; a loop blocked in ``pause()`` would then never run it. So
the loop never calls into the consumer while the fetch thread holds it: ``pause``,
``resume`` and ``commit`` are recorded here instead, and the thread holding the consumer
applies them as soon as it can (right after a rebalance listener returns, or when its
``consume`` returns), in the order they were made. Commits merge per partition (the
newest offset wins), as they would have at the broker.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Collection, Mapping

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from swimstream.logfields import partition_fields
from swimstream.streams.connector import TopicPartition
from swimstream.text import partition_list

log = logging.getLogger("swimstream.kafka.source")


def kafka_partitions(
    partitions: Collection[TopicPartition], offsets: Mapping[TopicPartition, int] | None = None
) -> list[KafkaPartition]:
    """confluent-kafka's partition objects, with offsets when given."""
    if offsets is None:
        return [KafkaPartition(tp.topic, tp.partition) for tp in partitions]
    return [KafkaPartition(tp.topic, tp.partition, offsets[tp]) for tp in partitions]


def resume_fetching(consumer: Consumer, partitions: list[KafkaPartition]) -> None:
    """Resume ``partitions``, then seek each to its position, which starts its fetch at
    once. A resume alone waits for librdkafka's fetcher, asleep while every partition
    was paused, to wake by itself: 0.4 to 0.9 s from resume to records on the embedded
    Tansu (its resume wakes nothing), during which an agent behind a full mailbox sat
    idle, a fifth of a slow agent's run; with the seek, 0.06 s. What it refetches, the
    pause had dropped anyway. A partition with no position yet (paused on assignment,
    for a restore) fetches from its committed offset when resumed, unsought: librdkafka
    refuses a seek (``_STATE``) on a partition whose fetch has not started. A refused
    seek leaves the partition resumed, to start when the fetcher wakes, as before."""
    consumer.resume(partitions)
    sought: list[str] = []
    for position in consumer.position(partitions):
        if position.offset >= 0:
            with contextlib.suppress(KafkaException):
                consumer.seek(position)
                sought.append(f"{position.topic}[{position.partition}]@{position.offset}")
    if log.isEnabledFor(logging.DEBUG):  # (readiness waits for each resumed one's end)
        log.debug(
            "resumed %s; sought %s",
            partition_list((p.topic, p.partition) for p in partitions),
            ", ".join(sought) or "none (no position yet: fetched from the committed offset)",
            extra=partition_fields((p.topic, p.partition) for p in partitions),
        )


class DeferredCalls:
    """Pause, resume and commit calls waiting for the consumer; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flow: list[tuple[bool, list[TopicPartition]]] = []  # (pause?, partitions)
        self._commits: dict[TopicPartition, int] = {}

    def __bool__(self) -> bool:
        return bool(self._flow or self._commits)

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Record a pause."""
        with self._lock:
            self._flow.append((True, partitions))

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Record a resume."""
        with self._lock:
            self._flow.append((False, partitions))

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Record a commit."""
        with self._lock:
            self._commits.update(offsets)

    def take_commits(self, partitions: Collection[TopicPartition]) -> dict[TopicPartition, int]:
        """Remove and return the recorded commits of ``partitions`` (being revoked:
        their final offsets are committed synchronously with the listener's)."""
        with self._lock:
            return {tp: self._commits.pop(tp) for tp in partitions if tp in self._commits}

    def apply(self, consumer: Consumer, assigned: Collection[TopicPartition]) -> list[str]:
        """Make the recorded calls, for partitions still ``assigned``; returns a line
        per call that failed (the caller logs them: the calls were made long ago by
        code that has moved on)."""
        with self._lock:
            flow, self._flow = self._flow, []
            commits, self._commits = self._commits, {}
        failures: list[str] = []
        for pause, partitions in flow:
            held = [tp for tp in partitions if tp in assigned]
            if not held:
                continue
            try:
                if pause:
                    consumer.pause(kafka_partitions(held))
                else:
                    resume_fetching(consumer, kafka_partitions(held))
            except KafkaException as exc:
                failures.append(f"{'pausing' if pause else 'resuming'} {held}: {exc}")
        held_commits = {tp: offset for tp, offset in commits.items() if tp in assigned}
        if held_commits:
            try:
                consumer.commit(offsets=kafka_partitions(held_commits, held_commits))
            except KafkaException as exc:
                failures.append(f"committing {held_commits}: {exc}")
        return failures

"""Where each assigned partition stands: the next offset to read and the high watermark.

Both come from librdkafka's local state (``position`` and ``get_watermark_offsets(...,
cached=True)``, the watermark the last Fetch response carried), never from ListOffsets,
which costs a round trip and which Tansu answers wrongly (see
:mod:`connectors.embedded.kafka`). Reading them is a consumer call, so the source reads
them on whichever thread holds the consumer and keeps the last reading as a
:class:`Progress` snapshot for the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.kafka.deferred import kafka_partitions
from swimstream.streams.connector import TopicPartition


@dataclass(frozen=True, slots=True)
class Progress:
    """One reading of the consumer's positions and fetch-reported high watermarks."""

    positions: dict[TopicPartition, int] = field(default_factory=dict)
    high_watermarks: dict[TopicPartition, int] = field(default_factory=dict)

    @classmethod
    def read(cls, consumer: Consumer, held: frozenset[TopicPartition]) -> Progress:
        """Read both for the ``held`` partitions (local calls, no network)."""
        if not held:
            return cls()
        return cls(_positions(consumer, held), _high_watermarks(consumer, held))


def positions(
    progress: Progress,
    end_offsets: Mapping[TopicPartition, int],
    buffered: Mapping[TopicPartition, int],
    held: frozenset[TopicPartition],
) -> dict[TopicPartition, int]:
    """The service's real position per held partition: the oldest record still buffered
    for it, else librdkafka's position, else where an end-of-partition event put it."""
    known = {tp: offset for tp, offset in end_offsets.items() if tp in held}
    known.update((tp, offset) for tp, offset in progress.positions.items() if tp in held)
    known.update((tp, offset) for tp, offset in buffered.items() if tp in held)
    return known


def _positions(consumer: Consumer, held: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
    try:
        found = consumer.position(kafka_partitions(held))
    except KafkaException:
        return {}
    return {TopicPartition(p.topic, p.partition): p.offset for p in found if p.offset >= 0}


def _high_watermarks(
    consumer: Consumer, held: frozenset[TopicPartition]
) -> dict[TopicPartition, int]:
    marks: dict[TopicPartition, int] = {}
    for tp in held:
        try:
            _low, high = consumer.get_watermark_offsets(
                KafkaPartition(tp.topic, tp.partition), cached=True
            )
        except KafkaException:
            continue
        if high >= 0:
            marks[tp] = high
    return marks

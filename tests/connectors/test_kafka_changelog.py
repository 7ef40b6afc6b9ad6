"""KafkaChangelogReader against the embedded broker: what recovery is told is exactly
what the broker holds (every record to each partition's end, the group's commits)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from confluent_kafka import Consumer
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.streams.connector import InboundRecord, TopicPartition
from tests.support.kafka import produce_json


def test_every_partition_is_read_to_its_end_from_where_the_store_left_off(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=3)
    for partition, count in ((0, 500), (1, 20)):  # partition 2 stays empty
        produce_json(
            kafka_broker.bootstrap,
            topic,
            ((f"k{n}", {"n": n}) for n in range(count)),
            partition=partition,
        )
    seen: dict[int, list[int]] = {0: [], 1: [], 2: []}

    def on_records(batch: Sequence[InboundRecord]) -> None:
        for record in batch:
            seen[record.partition() or 0].append(record.offset() or 0)

    reader = KafkaChangelogReader(kafka_broker.bootstrap)
    ends = asyncio.run(reader.read(topic, {0: 100}, on_records))
    assert ends == {0: 500, 1: 20, 2: 0}
    assert seen == {0: list(range(100, 500)), 1: list(range(20)), 2: []}


def test_the_groups_committed_offsets_are_read_without_joining_it(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=3)
    group = f"changelog-test-{uuid.uuid4().hex[:8]}"
    committer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": group})
    try:
        committer.commit(
            offsets=[KafkaPartition(topic, 0, 42), KafkaPartition(topic, 2, 7)], asynchronous=False
        )
    finally:
        committer.close()
    reader = KafkaChangelogReader(kafka_broker.bootstrap)
    wanted = [TopicPartition(topic, p) for p in range(3)]
    committed = asyncio.run(reader.committed_offsets(group, wanted))
    assert committed == {TopicPartition(topic, 0): 42, TopicPartition(topic, 2): 7}

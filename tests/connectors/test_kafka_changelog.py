"""KafkaChangelogReader against the embedded broker: what recovery is told is exactly
what the broker holds (every record to each partition's end, the group's commits)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as KafkaPartition

from connectors.embedded import EmbeddedKafka, TopicFactory
from connectors.kafka import changelog
from connectors.kafka.changelog import KafkaChangelogReader
from swimstream.errors import BrokerError
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
    ends = asyncio.run(reader.read(topic, {0: 100, 1: 0, 2: 0}, on_records))
    assert ends == {0: 500, 1: 20, 2: 0}
    assert seen == {0: list(range(100, 500)), 1: list(range(20)), 2: []}
    # A shard taken over at run time is read alone: the others are not this read's.
    seen = {0: [], 1: [], 2: []}
    assert asyncio.run(reader.read(topic, {1: 5}, on_records)) == {1: 20}
    assert seen == {0: [], 1: list(range(5, 20)), 2: []}


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


def test_a_read_fetches_about_one_batch_ahead_not_a_whole_tail() -> None:
    """librdkafka's default prefetch (100,000 records a partition) held a hand-over's
    whole tail in the reader's own threads, whose malloc arena kept it once freed: a
    new arena at every hand-over (see ``changelog.PREFETCH_RECORDS``)."""
    given = KafkaChangelogReader("127.0.0.1:9092")._consumer_config("a-group")
    assert given["queued.min.messages"] == changelog.BATCH
    assert given["queued.max.messages.kbytes"] == changelog.PREFETCH_KBYTES <= 16 * 1024
    # Still the user's to change, as the fetch settings are.
    chosen = KafkaChangelogReader("127.0.0.1:9092", {"queued.min.messages": 50_000})
    assert chosen._consumer_config("a-group")["queued.min.messages"] == 50_000


class _Answer:
    """One partition of an OffsetFetch answer, as librdkafka hands it over."""

    def __init__(self, topic: str, partition: int, offset: int, error: object = None) -> None:
        self.topic, self.partition, self.offset, self.error = topic, partition, offset, error


class _GroupAnswering:
    """Stands in for the broker's OffsetFetch answers, which the embedded broker cannot be
    made to fail on demand: the first ``failures`` carry an error for partition 1."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.asked = 0

    def committed(self, partitions: list[KafkaPartition], timeout: float) -> list[_Answer]:
        self.asked += 1
        failing = self.asked <= self.failures
        return [
            _Answer(p.topic, p.partition, -1001, "COORDINATOR_LOAD_IN_PROGRESS")
            if failing and p.partition == 1
            else _Answer(p.topic, p.partition, 10)
            for p in partitions
        ]

    def close(self) -> None:
        pass


def _reader_over(group: _GroupAnswering, monkeypatch: pytest.MonkeyPatch) -> KafkaChangelogReader:
    monkeypatch.setattr(changelog, "COMMITTED_PAUSE", 0.0)
    reader = KafkaChangelogReader("127.0.0.1:1")
    monkeypatch.setattr(reader, "_consumer", lambda _group: group)
    return reader


def test_a_partitions_error_in_the_committed_offsets_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = _GroupAnswering(failures=2)
    wanted = [TopicPartition("t", p) for p in range(3)]
    committed = asyncio.run(_reader_over(group, monkeypatch).committed_offsets("g", wanted))
    assert committed == {tp: 10 for tp in wanted}  # partition 1 is not left out
    assert group.asked == 3


def test_committed_offsets_that_stay_unreadable_stop_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    group = _GroupAnswering(failures=changelog.COMMITTED_ATTEMPTS)
    wanted = [TopicPartition("t", p) for p in range(3)]
    with pytest.raises(BrokerError, match=r"t\[1\]: COORDINATOR_LOAD_IN_PROGRESS"):
        asyncio.run(_reader_over(group, monkeypatch).committed_offsets("g", wanted))


def test_a_read_held_back_by_an_open_transaction_waits_for_it_rather_than_refuse_the_store(
    kafka_broker: EmbeddedKafka, make_topic: TopicFactory
) -> None:
    """A transaction another producer opened before this instance's last commit holds a
    ``read_committed`` reader's end (the last stable offset) back, below the local
    store's position: that is no store ahead of the topic. Found by a soak (towers on
    two instances, whose agents made on the wrong instance write into each other's
    shards): an instance gaining shards back stopped itself, saying its store
    belonged to another changelog."""
    topic = make_topic(partitions=1)
    settings = {"bootstrap.servers": kafka_broker.bootstrap}
    mine = Producer({**settings, "transactional.id": f"mine-{uuid.uuid4().hex[:8]}"})
    other = Producer({**settings, "transactional.id": f"other-{uuid.uuid4().hex[:8]}"})
    for producer in (mine, other):
        producer.init_transactions(10)
    other.begin_transaction()
    for n in range(5):
        other.produce(topic, b"v", f"open{n}".encode(), partition=0)  # offsets 0-4, open
    other.flush(10)
    mine.begin_transaction()
    for n in range(10):
        mine.produce(topic, b"v", f"k{n}".encode(), partition=0)  # offsets 5-14
    mine.commit_transaction(10)  # its marker at 15: the local store reflects up to 16
    seen: list[int] = []

    def on_records(batch: Sequence[InboundRecord]) -> None:
        seen.extend(record.offset() or 0 for record in batch)

    async def read_while_the_transaction_commits_later() -> dict[int, int]:
        reading = asyncio.create_task(
            KafkaChangelogReader(kafka_broker.bootstrap).read(topic, {0: 16}, on_records)
        )
        # past the reader's quiet check (changelog.QUIET_END), then the transaction ends
        await asyncio.sleep(changelog.QUIET_END + 2.0)
        if reading.done():
            reading.result()  # (raises what stopped the read)
        await asyncio.to_thread(other.commit_transaction, 10)
        return await asyncio.wait_for(reading, 60)

    ends = asyncio.run(read_while_the_transaction_commits_later())
    assert ends == {0: 17}  # its commit marker, nothing else after the store's position
    assert seen == []

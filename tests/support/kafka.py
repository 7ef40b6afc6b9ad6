"""Reading and writing Kafka topics directly, to set up and check connector tests.

These use confluent-kafka on their own, not the connectors under test, so a test's
setup and verdict do not depend on the code it checks. "The whole topic" is decided by
end-of-partition events, never by ListOffsets, which Tansu answers wrongly (see
:mod:`connectors.embedded.kafka`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from connectors.embedded import FAST_CONSUMER_SETTINGS

Key = str | bytes | None
Headers = Sequence[tuple[str, bytes]]

TANSU_SESSION: dict[str, int] = {
    "session.timeout.ms": int(FAST_CONSUMER_SETTINGS["session.timeout.ms"])
}
"""The session of consumers on the embedded broker (as ``kind: embedded`` sets it):
Tansu holds a group join for half of it (see :mod:`connectors.embedded.kafka`)."""

QUICK_GROUP_JOIN: dict[str, object] = {"static_membership": False, "settings": TANSU_SESSION}
"""``broker`` keys for a service under test whose group membership is beside the point.
Tansu holds a join for half the session timeout, and a static member's for 6 s more
(see :mod:`connectors.embedded.kafka`): a dynamic member with a 6 s session gets its
partitions 3 s after it joins, a static one with the default 10 s session after 8."""


def read_topic(
    bootstrap: str, topic: str, *, isolation: str = "read_committed", timeout: float = 20.0
) -> list[Message]:
    """Every record of ``topic``, read until each partition reported its end."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"read-topic-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": isolation,
            **FAST_CONSUMER_SETTINGS,
        }
    )
    try:
        partitions = _partitions(consumer, topic, timeout)
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        records: list[Message] = []
        at_end: set[int] = set()
        deadline = time.monotonic() + timeout
        while len(at_end) < len(partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: reached the end of partitions {sorted(at_end)} only")
            for message in consumer.consume(10_000, 0.1):
                error, partition = message.error(), message.partition()
                assert partition is not None
                if error is None:
                    records.append(message)
                    at_end.discard(partition)
                elif error.code() == KafkaError._PARTITION_EOF:
                    at_end.add(partition)
                else:
                    raise KafkaException(error)
        return records
    finally:
        consumer.close()


def produce_json(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[Key, object]],
    *,
    partition: int | None = None,
    headers: Headers | None = None,
    timeout: float = 30.0,
    settings: dict[str, str | int] | None = None,
) -> int:
    """Produce ``(key, value)`` pairs, values as JSON (bytes are sent as they are, for
    deliberately broken records), as fast as librdkafka takes them; returns how many
    were written. Raises on the first failed delivery. ``settings`` are added to the
    producer's (a larger ``message.max.bytes``, say)."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 500_000,
            **(settings or {}),
        }
    )
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    count = 0
    listed = list(headers) if headers else None
    for key, value in records:
        while True:
            try:
                producer.produce(
                    topic,
                    value if isinstance(value, bytes) else orjson.dumps(value),
                    key,
                    partition=-1 if partition is None else partition,
                    on_delivery=delivered,
                    headers=listed,  # type: ignore[arg-type]  # list[tuple[str, bytes]] is fine
                )
                break
            except BufferError:
                producer.poll(0.01)
        count += 1
    remaining = producer.flush(timeout)
    if failures:
        raise KafkaException(failures[0])
    if remaining:
        raise TimeoutError(f"{remaining} records to {topic} not delivered in {timeout} s")
    return count


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: int, timeout: float = 10.0
) -> dict[int, int]:
    """The group's committed offset per partition (partitions without one left out)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed(
            [TopicPartition(topic, p) for p in range(partitions)], timeout=timeout
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0}


def _partitions(consumer: Consumer, topic: str, timeout: float) -> list[int]:
    metadata = consumer.list_topics(topic, timeout=timeout)
    found = metadata.topics.get(topic)
    if found is None or found.error is not None:
        raise KafkaException(found.error if found is not None else KafkaError._UNKNOWN_TOPIC)
    return sorted(found.partitions)

"""Fetched records on their way from librdkafka to the service.

:class:`RecordBuffer` holds what the fetch thread received while the service was not
asking (see :mod:`connectors.kafka.source`), in arrival order, so that per-partition order
survives the hand-over. :func:`split_events` separates records from the consumer events
librdkafka interleaves with them, in one pass whose common case (no events) is a single
list comprehension, because it runs for every record the service ever sees.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Message

from swimstream.streams.connector import TopicPartition


@dataclass(slots=True)
class Split:
    """Records and what the events among them said."""

    records: list[Message]
    end_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    """End-of-partition events: the position of a partition that is fully read."""
    errors: list[KafkaError] = field(default_factory=list)
    """Every other error event, for the caller to log or raise."""


def split_events(messages: list[Message]) -> Split:
    """Records out of a ``consume`` result, with the events among them set apart."""
    records = [message for message in messages if message.error() is None]
    split = Split(records)
    if len(records) == len(messages):
        return split
    for message in messages:
        error = message.error()
        if error is None:
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if error.code() == KafkaError._PARTITION_EOF and topic is not None:
            if partition is not None and offset is not None:
                split.end_offsets[TopicPartition(topic, partition)] = offset
        else:
            split.errors.append(error)
    return split


class RecordBuffer:
    """Records fetched but not yet handed to the service, oldest first."""

    def __init__(self) -> None:
        self._batches: deque[list[Message]] = deque()
        self._head = 0  # records of the first batch already taken
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, records: list[Message]) -> None:
        """Append a batch (kept as it is, not copied)."""
        if records:
            self._batches.append(records)
            self._count += len(records)

    def take(self, limit: int) -> list[Message]:
        """Up to ``limit`` of the oldest records, removed from the buffer."""
        taken: list[Message] = []
        while self._batches and len(taken) < limit:
            batch = self._batches[0]
            end = min(len(batch), self._head + limit - len(taken))
            if self._head == 0 and end == len(batch) and not taken:
                taken = batch
            else:
                taken.extend(batch[self._head : end])
            if end == len(batch):
                self._batches.popleft()
                self._head = 0
            else:
                self._head = end
        self._count -= len(taken)
        return taken

    def first_offsets(self) -> dict[TopicPartition, int]:
        """The offset of the oldest buffered record per partition: the position the
        service has really reached there."""
        first: dict[TopicPartition, int] = {}
        for index, batch in enumerate(self._batches):
            for record in batch[self._head if index == 0 else 0 :]:
                topic, partition, offset = record.topic(), record.partition(), record.offset()
                if topic is None or partition is None or offset is None:
                    continue
                first.setdefault(TopicPartition(topic, partition), offset)
        return first

    def discard(self, partitions: Iterable[TopicPartition]) -> int:
        """Drop the records of ``partitions`` (revoked: the new owner reads them from
        the committed offset); returns how many were dropped."""
        gone = set(partitions)
        if not gone or not self._count:
            return 0
        everything = self.take(self._count)
        kept = [
            record
            for record in everything
            if TopicPartition(record.topic() or "", record.partition() or 0) not in gone
        ]
        self.extend(kept)
        return len(everything) - len(kept)

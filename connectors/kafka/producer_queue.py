"""The Kafka sink's producer queue: how many records it holds before ``produce`` waits
for room, and the records produced between two marks, for ``KafkaSink.flush_to``.

A module of its own to keep :mod:`connectors.kafka.sink` within its size.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

QUEUE_MAX_MESSAGES = 100_000
"""librdkafka's default ``queue.buffering.max.messages``."""


def queue_limit(config: Mapping[str, Any]) -> int:
    """Records the producer's queue holds before ``produce`` has to wait for room:
    ``queue.buffering.max.messages``, or ``queue.buffering.max.kbytes`` at a KiB a
    record when that is fewer (insights are small JSON; larger ones fill the queue by
    bytes sooner, and ``produce`` waits for room then). The service pauses its sources
    well before (:mod:`swimstream.streams.sink_pressure`)."""
    messages = int(config.get("queue.buffering.max.messages", QUEUE_MAX_MESSAGES))
    kbytes = int(config.get("queue.buffering.max.kbytes", messages))
    return max(1, min(messages, kbytes))


class Batch:
    """The reported records produced between two marks (a checkpoint's cuts), counted
    down as their reports come."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = 0

"""The records a Kafka sink produced between two marks, for ``KafkaSink.flush_to``.

A module of its own to keep :mod:`connectors.kafka.sink` within its size.
"""

from __future__ import annotations


class Batch:
    """The reported records produced between two marks (a checkpoint's cuts), counted
    down as their reports come."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = 0

"""A key an agent publishes under must be text: one that is not fails the callback, saying so."""

from __future__ import annotations

from typing import Any

from swimstream import Agent, CommandLane
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Plane
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import PartitionTracker, record_ack
from swimstream.testing import FakeClock, MemoryRecord, MemorySink


class Keyed(Agent):
    """Publishes under the key it is sent."""

    send = CommandLane[Any]()

    @send.on_command
    def on_send(self, key: Any) -> None:
        self.publish("raw", "hello", key=key)


async def test_a_key_that_is_not_text_fails_its_callback_saying_so() -> None:
    """An id from a JSON payload is often a number: the sink failed on it with
    "'int' object has no attribute 'encode'", naming neither the key nor the fix."""
    registry = MetricsRegistry()
    connector: Any = MemorySink()  # produces only
    publisher = InsightPublisher(
        {"raw": SinkTarget("raw-out", "raw", connector)}, registry, DeliveryFailures(registry)
    )
    tracker = PartitionTracker(TopicPartition("in", 0))
    dead = DeadLetters(connector, "dead", registry)
    async with Plane({"/keyed/:id": Keyed}, clock=FakeClock(), publisher=publisher) as plane:
        for offset, key in enumerate(["7", 7, None]):
            record = MemoryRecord("in", 0, offset, b"k", b"")
            plane.submit("/keyed/a", "send", key, record_ack(tracker, record, offset, dead))
        await plane.settle()
        connector.poll()
    assert [(r.topic, r.key) for r in connector.records] == [
        ("raw-out", b"7"),
        ("dead", b"k"),
        ("raw-out", b"a"),
    ]
    reason = connector.records[1].headers["swimstream.error"]
    assert b"publish('raw'): the key must be text (str), not int (7); pass str(key)" in reason

"""``format: raw`` sinks write bytes, text and numbers as they are, and refuse the rest.

They wrote ``str(value)``: an object an agent published, or a lane sink's map change,
went out as Python's spelling of it (``{'level': 3}``, ``None``, ``True``), which no
consumer reads back, and the source record committed as if all went well.
"""

from __future__ import annotations

from typing import Any

from swimstream import Agent, CommandLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.runtime import Plane
from swimstream.streams.connector import TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.lane_sink import LaneSink
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.streams.tracking import PartitionTracker, record_ack
from swimstream.testing import FakeClock, MemoryRecord, MemorySink


class Relay(Agent):
    """Publishes what it is sent to the raw sink, and keeps it in a lane."""

    latest = ValueLane[Any](default="")
    send = CommandLane[Any]()

    @send.on_command
    def on_send(self, value: Any) -> None:
        self.latest.set(value)
        self.publish("raw", value)


SENT: list[Any] = ["text", 42, 1.5, {"level": 3}, None, True, [1, 2]]


async def test_a_raw_sink_writes_text_and_numbers_and_dead_letters_other_values() -> None:
    registry = MetricsRegistry()
    connector: Any = MemorySink()  # produces only
    failures = DeliveryFailures(registry)
    publisher = InsightPublisher(
        {"raw": SinkTarget("raw-out", "raw", connector)}, registry, failures
    )
    tracker = PartitionTracker(TopicPartition("in", 0))
    dead = DeadLetters(connector, "dead", registry)
    async with Plane({"/relay/:id": Relay}, clock=FakeClock(), publisher=publisher) as plane:
        sink = LaneSink(SinkTarget("lane-out", "raw", connector), "id", registry, failures)
        plane.observe(sink, route="/relay/:id", lane="latest")
        for offset, value in enumerate(SENT):
            record = MemoryRecord("in", 0, offset, b"k", b"")
            ack = record_ack(tracker, record, offset, dead)
            plane.submit("/relay/a", "send", value, ack)
        await plane.settle()
        connector.poll()
    written = {(r.topic, r.value) for r in connector.records if r.topic != "dead"}
    assert written == {
        ("raw-out", b"text"),
        ("lane-out", b"text"),
        ("raw-out", b"42"),
        ("lane-out", b"42"),
        ("raw-out", b"1.5"),
        ("lane-out", b"1.5"),
    }
    letters = [r for r in connector.records if r.topic == "dead"]
    assert [r.headers["swimstream.origin.offset"] for r in letters] == [b"3", b"4", b"5", b"6"]
    assert all(b"format raw writes bytes, text" in r.headers["swimstream.error"] for r in letters)
    assert tracker.committable == len(SENT)

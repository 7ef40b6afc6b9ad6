"""Sinks holding too many unacknowledged insights pause the source until they drain."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.streams.sink_pressure import SinkLimit, SinkPressure
from swimstream.streams.sinks import DeliveryFailures, InsightPublisher, SinkTarget
from swimstream.testing import FakeClock, MemoryRecord, MemorySink
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until


class Chatty(Agent):
    """Publishes ten insights per record (each keeps its record in flight until the
    broker took it)."""

    entry = CommandLane[dict[str, Any]]()
    seen = CounterLane()

    @entry.on_command
    def on_entry(self, record: dict[str, Any]) -> None:
        self.seen.add(1)
        for i in range(10):
            self.publish("out", {"n": record["n"], "i": i})


class SlowSink(MemorySink):
    """Acknowledges records only when the test says so (:meth:`deliver`)."""

    @property
    def pending(self) -> int:
        return len(self._reports)

    def deliver(self, count: int) -> None:
        reports, self._reports = self._reports[:count], self._reports[count:]
        for report in reports:
            report(None)


def records(start: int, count: int) -> list[MemoryRecord]:
    """A record for each of ``count`` agents."""
    return [
        MemoryRecord("readings", 0, n, f"c{n}".encode(), orjson.dumps({"n": n}))
        for n in range(start, start + count)
    ]


async def test_a_crowded_sink_pauses_the_source_until_it_drained_to_half() -> None:
    sink = SlowSink()
    registry = MetricsRegistry()
    publisher = InsightPublisher(
        {"out": SinkTarget("out", "json", sink)},  # type: ignore[arg-type]
        registry,
        DeliveryFailures(registry),
    )
    plane = Plane({"/c/:id": Chatty}, clock=FakeClock(), publisher=publisher)
    async with plane:
        route = SourceRoute("readings", RouteTemplate.parse("/c/{key}"), "entry")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        arrivals = {1: records(0, 20), 2: records(20, 20), 3: records(40, 20)}
        source = ScriptedSource(arrivals, waits=4)
        runner = SourceRunner(
            "test",
            source,  # type: ignore[arg-type]
            router,
            registry,
            sinks=SinkPressure([SinkLimit(sink, 100)]),  # type: ignore[arg-type]
        )
        task = asyncio.create_task(runner.run())
        try:
            # The first 20 records make their agents, whose start runs first: their
            # insights come after the batch was looked at. At the second batch 200 are
            # unacknowledged, over the sink's 100 (though 40 records in flight are far
            # below the in-flight bound): the source reads nothing more.
            await wait_until(lambda: runner.paused, 5, "a pause for the sink")
            await asyncio.sleep(0.05)
            assert sink.pending == 400
            assert len(source.timeouts) == 2, "read on while the sink was crowded"
            sink.deliver(340)  # 60 left: over half the limit, still paused
            await asyncio.sleep(0.05)
            assert runner.paused and len(source.timeouts) == 2
            sink.deliver(10)  # 50 left: half the limit, the source reads on
            await wait_until(lambda: len(source.timeouts) > 2, 5, "reading on")
            sink.deliver(1000)
            await wait_until(lambda: source.done.is_set(), 5, "every record read")
            await plane.settle()
            sink.deliver(1000)
            assert sum(plane.get(f"/c/c{k}", "seen") for k in range(60)) == 60
            assert runner.book.inflight == 0
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert registry.value("source_pauses", source="test") >= 1

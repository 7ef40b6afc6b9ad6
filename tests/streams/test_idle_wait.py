"""An idle source loop waits long; records bring the short wait back at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from swimstream import Agent, CommandLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.streams.connector import InboundRecord, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import IDLE_SOURCE_WAIT, SOURCE_WAIT, SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane

PARTITION = TopicPartition("readings", 0)


class Meter(Agent):
    last = ValueLane[Any](default=None)
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.last.set(event)


class ScriptedSource:
    """A connector whose waits return at once (no time passes) and note their timeout;
    ``arrivals`` maps a wait's number to the records that arrive during it."""

    reports_watermarks = False
    connected = True

    def __init__(self, arrivals: Mapping[int, list[MemoryRecord]], waits: int) -> None:
        self.arrivals = dict(arrivals)
        self.timeouts: list[float] = []
        self.done = asyncio.Event()
        self._limit = waits
        self._ready: list[MemoryRecord] = []

    def consume(self, max_records: int) -> Sequence[InboundRecord]:
        batch, self._ready = self._ready[:max_records], self._ready[max_records:]
        return batch  # (MemoryRecord is an InboundRecord)

    async def wait_for_records(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        self._ready += self.arrivals.pop(len(self.timeouts), [])
        if len(self.timeouts) >= self._limit:
            self.done.set()
            await asyncio.Event().wait()  # until the test cancels the runner
        await asyncio.sleep(0)  # the agents run meanwhile

    def set_rebalance_listener(self, listener: Callable[..., Any]) -> None:
        pass

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    def pause(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def resume(self, partitions: Sequence[TopicPartition]) -> None:
        pass

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        pass

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {}

    def positions(self) -> dict[TopicPartition, int]:
        return {}

    async def close(self) -> None:
        pass


def reading(offset: int) -> MemoryRecord:
    return MemoryRecord("readings", 0, offset, b"m1", orjson.dumps({"n": offset}))


async def test_an_idle_source_loop_backs_off_to_a_few_waits_a_second_and_back() -> None:
    """Before, every empty wait lasted 50 ms: 20 wake-ups a second of an idle instance."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        registry = MetricsRegistry()
        route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "reading")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        source = ScriptedSource({8: [reading(0), reading(1)]}, waits=16)
        # (commits due at every look: no time passes here)
        runner = SourceRunner("test", source, router, registry, commit_interval=0.0)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        await source.done.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert plane.get("/meter/m1", "last") == {"n": 1}

    waits = source.timeouts
    assert runner.waits == len(waits) == 16
    assert waits[:8] == [SOURCE_WAIT, 0.1, 0.2, *[IDLE_SOURCE_WAIT] * 5], waits
    assert waits[8] == SOURCE_WAIT, waits  # records came: short waits again at once
    assert waits[-1] == IDLE_SOURCE_WAIT, waits  # and long ones once they are done
    # However long each wait is, records end it as they arrive; an idle loop wakes at
    # most five times a second.
    assert 1 / IDLE_SOURCE_WAIT <= 5

"""An idle source loop waits long; records bring the short wait back at once."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from swimstream import Agent, CommandLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import IDLE_SOURCE_WAIT, SOURCE_WAIT, SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import ScriptedSource


class Meter(Agent):
    last = ValueLane[Any](default=None)
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, event: dict[str, Any]) -> None:
        self.last.set(event)


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

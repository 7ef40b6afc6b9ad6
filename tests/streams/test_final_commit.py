"""The last commit before a stop repeats every offset, moved since the last one or not.

Commits while running are asynchronous and fire-and-forget: one that fails is superseded
by the next only if the partition moves on. A partition that went idle after such a
failure would otherwise be left committed short, and read twice by whoever reads it next.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.connector import Rebalance
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import PARTITION, ScriptedSource


class Counter(Agent):
    seen = CounterLane()
    reading = CommandLane[dict[str, Any]]()

    @reading.on_command
    def on_reading(self, _: dict[str, Any]) -> None:
        self.seen.add(1)


def five_records_of_a(
    plane: Plane, commit_interval: float
) -> tuple[MetricsRegistry, ScriptedSource, SourceRunner]:
    """A runner over a scripted source of five records of key ``a``, and its registry."""
    registry = MetricsRegistry()
    route = SourceRoute("readings", RouteTemplate.parse("/counter/{key}"), "reading")
    dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]  # produces only
    router = RecordRouter(plane, [route], dead, registry)
    arrivals = [MemoryRecord("readings", 0, n, b"a", orjson.dumps({"n": n})) for n in range(5)]
    source = ScriptedSource({1: arrivals}, waits=3)
    runner = SourceRunner("test", source, router, registry, commit_interval=commit_interval)  # type: ignore[arg-type]
    return registry, source, runner


async def test_a_stop_commits_every_offset_again_though_none_moved() -> None:
    async with open_plane({"/counter/:id": Counter}) as plane:
        _, source, runner = five_records_of_a(plane, commit_interval=0.0)
        task = asyncio.create_task(runner.run())
        await source.done.wait()
        await plane.settle()
        await runner.stop_consuming(1.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert plane.get("/counter/a", "seen") == 5
        assert source.commits.count({PARTITION: 5}) == 2, source.commits  # and once more
        assert source.commits[-1] == {PARTITION: 5}


async def test_the_commit_a_revoke_asks_for_is_counted() -> None:
    """Without checkpoints, the offsets a revoke returns are committed by the connector
    before the partitions go: an offset commit like the periodic ones, which
    ``offset_commits`` did not count."""
    async with open_plane({"/counter/:id": Counter}) as plane:
        registry, source, runner = five_records_of_a(plane, commit_interval=60.0)
        task = asyncio.create_task(runner.run())
        await source.done.wait()
        await plane.settle()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert source.commits == [] and registry.value("offset_commits", source="test") == 0
        final = runner._on_rebalance(Rebalance(revoked=(PARTITION,)))
        assert final == {PARTITION: 5}
        assert registry.value("offset_commits", source="test") == 1

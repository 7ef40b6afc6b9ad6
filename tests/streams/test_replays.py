"""Records a partition given back after a revoke delivers again are applied once.

With checkpoints (managed commits), a revoke whose checkpoint could not be made lets the
group resume the partition at the last checkpoint's cut, while the agents hold every
record routed since (see :mod:`swimstream.streams.ingest`). When the partition comes
back to this runner, the records before where it was routed to are dropped as they are
delivered again, and the rest are routed; in a fetched batch beside another partition's
records, which the batch path routes (:meth:`RecordRouter.route_batch`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from swimstream import Agent, CommandLane, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.streams.connector import Rebalance, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.test_restoring_hold import FlowingSource
from tests.support.waiting import wait_until

GIVEN_BACK = TopicPartition("readings", 0)
OTHER = TopicPartition("readings", 1)


class Tally(Agent):
    """Notes every reading it is sent, in order."""

    seen = ValueLane[list[Any]](default=[])
    reading = CommandLane[int]()

    @reading.on_command
    def on_reading(self, n: int) -> None:
        self.seen.set([*self.seen.get(), n])


def readings(tp: TopicPartition, offsets: range) -> list[MemoryRecord]:
    """One reading per offset, the reading its partition and offset (``p * 100 + o``)."""
    value = tp.partition * 100
    return [MemoryRecord(tp.topic, tp.partition, o, b"k", orjson.dumps(value + o)) for o in offsets]


async def test_a_partition_given_back_drops_what_its_agents_hold_and_routes_the_rest() -> None:
    async with open_plane({"/tally/:id": Tally}) as plane:
        registry = MetricsRegistry()
        route = SourceRoute("readings", RouteTemplate.parse("/tally/{key}"), "reading")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        source = FlowingSource({1: readings(GIVEN_BACK, range(5))}, waits=0)
        source.held = {GIVEN_BACK, OTHER}
        runner = SourceRunner("test", source, router, registry, managed_commits=True)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        try:

            def seen() -> list[int]:
                return list(plane.get("/tally/k", "seen"))

            await wait_until(lambda: len(seen()) == 5, 5, "the first five routed")
            assert source.listener is not None
            # A revoke without its checkpoint, and the same partitions given back: the
            # group resumes at offset 2, where the last checkpoint's cut was.
            source.listener(Rebalance(revoked=(GIVEN_BACK, OTHER)))
            source.listener(Rebalance(assigned=(GIVEN_BACK, OTHER)))
            assert runner.book.trackers[GIVEN_BACK].replayed_to == 5
            batch = readings(OTHER, range(2)) + readings(GIVEN_BACK, range(2, 8))
            batch += readings(OTHER, range(2, 4))
            source.arrivals[len(source.timeouts) + 1] = batch
            await wait_until(lambda: len(seen()) == 12, 5, "the batch routed")
            await plane.settle()
            assert seen() == [0, 1, 2, 3, 4, 100, 101, 5, 6, 7, 102, 103]
            assert runner.book.trackers[GIVEN_BACK].replayed_to is None
            assert runner.book.routed_positions() == {GIVEN_BACK: 8, OTHER: 4}
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

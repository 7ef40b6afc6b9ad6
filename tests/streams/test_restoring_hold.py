"""Records of a partition whose state is being restored wait for its restore.

A partition gained is paused until its shard's state is restored from the changelog,
but records librdkafka fetched before the pause took hold still came out of the next
consume, and were routed at once: into agents the restore then replaced (their effects
gone) while their offsets were committed all the same. A Kafka source test caught a
fetch of that kind under load (tests/connectors/test_kafka_source.py, the listener that
pauses new partitions).
"""

from __future__ import annotations

import asyncio

import orjson

from swimstream.runtime import FakeClock
from swimstream.streams.connector import Rebalance, TopicPartition
from swimstream.testing import MemoryRecord, open_plane
from tests.streams.scripted import PARTITION, ScriptedSource
from tests.streams.test_ingest_log import Meter, runner_for


class FlowingSource(ScriptedSource):
    """Scripted arrivals, and waits that always come back (the runner keeps going)."""

    async def wait_for_records(self, timeout: float) -> None:
        self.timeouts.append(timeout)
        self._ready += self.arrivals.pop(len(self.timeouts), [])
        await asyncio.sleep(0.001)


def readings(*values: int) -> list[MemoryRecord]:
    return [
        MemoryRecord("readings", 0, offset, b"a", orjson.dumps(value))
        for offset, value in enumerate(values)
    ]


async def test_records_fetched_before_a_restoring_partition_paused_wait_for_its_state() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = FlowingSource({1: readings(1, 2)}, waits=0)
        runner = runner_for(plane, source)
        runner.restoring.add(PARTITION)  # (as the durable service marks a gained one)
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.sleep(0.05)
            await plane.settle()
            assert plane.active_node_uris() == []  # nothing routed: no agent made
            assert runner.book.inflight == 0
            runner.restored([PARTITION])
            await asyncio.sleep(0.05)
            await plane.settle()
            assert plane.get("/meter/a", "last") == 2  # both, in their order
            assert ("resume", [PARTITION]) in source.flow
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_records_held_for_a_partition_revoked_before_its_restore_are_dropped() -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = FlowingSource({1: readings(1)}, waits=0)
        runner = runner_for(plane, source)
        runner.restoring.add(PARTITION)
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.sleep(0.05)
            assert source.listener is not None
            source.listener(Rebalance(revoked=(PARTITION,)))  # its new owner reads it
            source.held = set()
            runner.restored([PARTITION])
            await asyncio.sleep(0.05)
            await plane.settle()
            assert plane.active_node_uris() == []
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_records_routed_one_by_one_while_a_partition_restores_note_the_time() -> None:
    """While a partition restores, the others' records are routed one at a time (not
    through ``RecordRouter.route_batch``): their batch notes the time for the recency
    of its agents all the same, so an idle timeout counts from it."""
    clock = FakeClock()
    async with open_plane({"/meter/:id": Meter}, idle_timeout=100.0, clock=clock) as plane:
        runner = runner_for(plane, FlowingSource({}, waits=0))
        for key in ("a", "b"):
            await plane.command(f"/meter/{key}", "last", 0)
        await plane.settle()
        runner.restoring.add(TopicPartition("readings", 7))  # (another partition)
        clock.advance(50.0)
        runner._route_batch(readings(1))  # (the source loop's call, without its waits)
        await plane.settle()
        assert plane.get("/meter/a", "last") == 1
        clock.advance(60.0)  # b idle for 110 s, a for 60 s
        plane.passivate_idle()
        assert plane.active_node_uris() == ["/meter/a"]


async def test_records_of_a_partition_revoked_just_after_its_restore_are_dropped() -> None:
    """A revoke that comes after the restore, before the loop routes what the partition
    held (the loop was waiting for records): its new owner reads those records, and
    routing them here too applied them twice, into agents this instance no longer owns."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = FlowingSource({1: readings(1)}, waits=0)
        runner = runner_for(plane, source)
        runner.restoring.add(PARTITION)
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.sleep(0.05)
            assert source.listener is not None
            runner.restored([PARTITION])
            source.listener(Rebalance(revoked=(PARTITION,)))  # (before the loop runs)
            source.held = set()
            await asyncio.sleep(0.05)
            await plane.settle()
            assert plane.active_node_uris() == []
            assert PARTITION not in runner.book.trackers
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

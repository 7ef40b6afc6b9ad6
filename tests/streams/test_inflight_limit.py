"""More records in flight than the limit hold the source back, though no mailbox is full."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams import ingest
from swimstream.streams.connector import Rebalance, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import PARTITION, ScriptedSource
from tests.support.waiting import wait_until


class Valve(Agent):
    """Keeps each record in flight until the test lets one through the gate."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()
    gate: asyncio.Semaphore

    @work.on_command
    async def on_work(self, event: dict[str, Any]) -> None:
        await self.gate.acquire()
        self.done.add(1)


def records(start: int, count: int) -> list[MemoryRecord]:
    """One record for each of ``count`` agents: every mailbox holds one, none is full."""
    return [
        MemoryRecord("readings", 0, n, f"v{n}".encode(), orjson.dumps({"n": n}))
        for n in range(start, start + count)
    ]


async def turns_until(condition: Callable[[], bool]) -> None:
    """Let the loop run until ``condition`` holds (a few turns: no time passes here)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("not reached in 1,000 turns of the loop")


@contextlib.asynccontextmanager
async def valves() -> AsyncIterator[tuple[Plane, MetricsRegistry, ScriptedSource, SourceRunner]]:
    """A runner over a scripted source feeding Valve agents, with a limit of 8 records
    in flight: 20 records arrive in the first wait and 20 in the second, each for its
    own agent. Every gate opens and the runner stops on the way out."""
    Valve.gate = asyncio.Semaphore(0)
    async with open_plane({"/valve/:id": Valve}, mailbox_capacity=100) as plane:
        registry = MetricsRegistry()
        route = SourceRoute("readings", RouteTemplate.parse("/valve/{key}"), "work")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        source = ScriptedSource({1: records(0, 20), 2: records(20, 20)}, waits=3)
        runner = SourceRunner("test", source, router, registry, max_inflight=8)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        try:
            yield plane, registry, source, runner
        finally:
            for _ in range(40):
                Valve.gate.release()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_more_records_in_flight_than_the_limit_stop_the_reading_until_half_are_done() -> None:
    async with valves() as (plane, registry, source, runner):
        await turns_until(lambda: runner.paused or source.done.is_set())
        # 20 in flight, over the limit of 8: the runner reads nothing more (no second
        # wait, so the next 20 stay at the source) ...
        assert runner.paused, f"read on with {runner.book.inflight} in flight"
        assert runner.book.inflight == 20
        assert len(source.timeouts) == 1
        assert registry.value("source_pauses", source="test") == 1
        # ... while more than half the limit is in flight (it looks every 5 ms) ...
        for _ in range(12):
            Valve.gate.release()
        await turns_until(lambda: runner.book.inflight == 8)
        await asyncio.sleep(0.05)
        assert runner.paused, "read on with 8 in flight, over half the limit"
        assert len(source.timeouts) == 1
        # ... and reads on once no more than half is.
        for _ in range(40):
            Valve.gate.release()
        await asyncio.wait_for(source.done.wait(), 10)  # the next 20, held the same way
        await plane.settle()
        assert sum(plane.get(f"/valve/v{n}", "done") for n in range(40)) == 40

    assert registry.value("source_pauses", source="test") == 2
    assert not runner.paused


async def test_a_long_pause_keeps_the_group_membership_alive_and_a_short_one_does_not_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Through a backpressure wait longer than ``KEEP_MEMBERSHIP_AFTER`` (0.2 s here) the
    runner keeps calling its connector's ``keep_membership`` (Kafka would otherwise
    leave the group); a shorter wait does not, and the calls stop with the wait."""
    monkeypatch.setattr(ingest, "KEEP_MEMBERSHIP_AFTER", 0.2)
    monkeypatch.setattr(ingest, "KEEP_MEMBERSHIP_POLL", 0.02)
    async with valves() as (_plane, _registry, source, runner):
        await turns_until(lambda: runner.paused)
        await asyncio.sleep(0.1)  # a short wait so far: no keep-alive
        assert source.kept == []
        await asyncio.sleep(0.3)  # past 0.2 s: polled every 0.02 s
        assert len(source.kept) >= 5 and set(source.kept) == {0.02}
        for _ in range(40):  # the wait ends (and the next batch's is short) ...
            Valve.gate.release()
        await wait_until(lambda: source.done.is_set() and not runner.paused, 5, "the last wait")
        kept = len(source.kept)
        await asyncio.sleep(0.1)
        assert len(source.kept) == kept  # ... and the keep-alive with it


async def test_partitions_gained_or_restored_during_a_backpressure_wait_wait_as_well() -> None:
    """A partition assigned while the runner waits for room is paused with the others
    (the keep-alive's consumes would otherwise fetch it into memory, wait after wait),
    and so is one whose restore ends meanwhile; the wait's end resumes them all."""
    gained, restored = TopicPartition("readings", 1), TopicPartition("readings", 2)
    async with valves() as (_plane, _registry, source, runner):
        await turns_until(lambda: runner.paused)
        assert source.flow == [("pause", [PARTITION])]
        assert source.listener is not None
        source.held |= {gained, restored}
        runner.restoring.add(restored)  # (as the durable service marks a gained one)
        source.listener(Rebalance(assigned=(gained, restored), incremental=True))
        runner.restored([restored])  # its state is back while the wait goes on
        assert source.flow == [("pause", [PARTITION]), ("pause", [gained, restored])]
        for _ in range(40):  # the wait ends
            Valve.gate.release()
        await wait_until(lambda: source.done.is_set() and not runner.paused, 5, "the last wait")
    resumed = [partitions for what, partitions in source.flow if what == "resume"]
    assert resumed[0] == [PARTITION, gained, restored]


async def test_a_restore_ending_outside_a_backpressure_wait_resumes_its_partitions() -> None:
    restored = TopicPartition("readings", 2)
    async with valves() as (_plane, _registry, source, runner):
        source.held |= {restored}
        runner.restoring.add(restored)
        runner.restored([restored, TopicPartition("readings", 3)])  # (3: no longer held)
        assert runner.restoring == set()
        assert source.flow[0] == ("resume", [restored])

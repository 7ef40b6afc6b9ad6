"""The wording of /healthz and /readyz checks, from a stand-in for the service's state.

ServiceHealth only reads attributes of the service, so plain namespaces stand in for a
started service (which needs a broker) without mocking what is tested.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from swimstream import Agent, CommandLane
from swimstream.metrics import MetricsRegistry
from swimstream.service.health import ServiceHealth
from swimstream.streams import TopicPartition
from swimstream.streams.connector import Rebalance
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter
from swimstream.testing import MemorySink, open_plane
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until


def service(runner: Any, checkpoints: int) -> Any:
    stats = SimpleNamespace(checkpoints=checkpoints)
    return SimpleNamespace(
        plane=SimpleNamespace(running=True, active_agents=1),
        durability=SimpleNamespace(
            fault=None, failed=None, checkpointer=SimpleNamespace(stats=stats)
        ),
        failure=None,
        failures=SimpleNamespace(count=0, last_error=None),
        runners=[runner],
        config=SimpleNamespace(sources=[object()]),
        started_at=1.0,
        starting=None,
    )


def runner(ready: bool, behind: int) -> Any:
    one = TopicPartition("readings", 0)
    connector = SimpleNamespace(connected=True, assignment=lambda: {one})
    return SimpleNamespace(
        name="kafka:readings",
        connector=connector,
        ready=ready,
        paused=False,
        lag=lambda: {one: behind},
    )


def test_one_checkpoint_one_partition_and_one_record_behind_read_in_the_singular() -> None:
    ready = ServiceHealth(service(runner(ready=True, behind=0), checkpoints=1)).readiness()
    assert ready.ok
    assert ready.checks["store"] == "ok (1 checkpoint)"
    assert ready.checks["kafka:readings"] == "1 partition"
    behind = ServiceHealth(service(runner(ready=False, behind=1), checkpoints=2)).readiness()
    assert not behind.ok
    assert behind.checks["store"] == "ok (2 checkpoints)"
    assert behind.checks["kafka:readings"] == "catching up (1 record behind)"


def test_one_undelivered_insight_record_reads_in_the_singular() -> None:
    stand_in = service(runner(ready=True, behind=0), checkpoints=1)
    stand_in.failures = SimpleNamespace(count=1, last_error="timed out")
    health = ServiceHealth(stand_in).health()
    assert not health.ok
    assert health.checks["sinks"] == "1 insight or dead-letter record not delivered: timed out"


def test_catching_up_names_the_partitions_whose_end_is_not_known_yet() -> None:
    """A partition no fetch has told the end of counts for nothing behind, yet keeps
    the instance unready: the check says which, rather than "0 records behind"."""
    held = {TopicPartition("readings", p) for p in range(4)}
    stand_in = runner(ready=False, behind=0)
    stand_in.connector.assignment = lambda: held
    stand_in.lag = lambda: {TopicPartition("readings", 0): 3, TopicPartition("readings", 2): 0}
    readiness = ServiceHealth(service(stand_in, checkpoints=1)).readiness()
    assert not readiness.ok
    assert readiness.checks["kafka:readings"] == (
        "catching up (3 records behind; the end of readings[1, 3] not known yet)"
    )


class Meter(Agent):
    reading = CommandLane[Any]()


class Watermarked(ScriptedSource):
    """A source whose partitions' ends and read positions the test sets."""

    reports_watermarks = True

    def __init__(self) -> None:
        super().__init__({}, waits=1 << 30)
        self.connected = True
        self.ends: dict[TopicPartition, int] = {}
        self.read: dict[TopicPartition, int] = {}

    def high_watermarks(self) -> dict[TopicPartition, int]:
        return {tp: end for tp, end in self.ends.items() if tp in self.held}

    def positions(self) -> dict[TopicPartition, int]:
        return {tp: at for tp, at in self.read.items() if tp in self.held}


async def test_ready_once_caught_up_through_new_backlogs_and_unready_while_the_broker_is_away() -> (
    None
):
    """What README's /readyz row says: ready once every partition of the first
    assignment was read to its end; a rebalance that brings partitions with a backlog,
    or a lag spike, leaves it ready (the lag is a metric: an orchestrator would take
    every instance out at once after a crash shared its partitions out); a broker that
    does not answer makes it unready until it is back, with no catch-up again."""
    first, gained = TopicPartition("readings", 0), TopicPartition("readings", 1)
    source = Watermarked()
    source.held, source.ends, source.read = {first}, {first: 5}, {first: 0}
    async with open_plane({"/meter/:id": Meter}) as plane:
        registry = MetricsRegistry()
        router = RecordRouter(plane, [], DeadLetters(MemorySink(), "dead", registry), registry)  # type: ignore[arg-type]
        runner = SourceRunner("kafka:readings", source, router, registry)  # type: ignore[arg-type]
        health = ServiceHealth(service(runner, checkpoints=1))
        task = asyncio.create_task(runner.run())
        try:
            await wait_until(lambda: bool(source.timeouts))
            assert health.readiness().checks["kafka:readings"] == "catching up (5 records behind)"
            source.read[first] = 5
            await wait_until(lambda: health.readiness().ok)

            source.held, source.ends[gained], source.read[gained] = {first, gained}, 900, 0
            assert source.listener is not None
            source.listener(Rebalance(assigned=(gained,), incremental=True))
            source.ends[first] = 400  # (and a burst on the first)
            waits = len(source.timeouts)
            await wait_until(lambda: len(source.timeouts) > waits)
            assert sum(runner.lag().values()) == 1295
            readiness = health.readiness()
            assert readiness.ok and readiness.checks["kafka:readings"] == "2 partitions"

            source.connected = False
            readiness = health.readiness()
            assert not readiness.ok
            assert readiness.checks["kafka:readings"] == "broker unreachable; retrying"
            source.connected = True
            assert health.readiness().ok  # (still 1295 behind)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

"""What a source runner logs: one line per event, worded for the count it gives."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from swimstream import Agent, ValueLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.connector import Rebalance
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import PARTITION, ScriptedSource


class Meter(Agent):
    last = ValueLane[Any](default=None)


def runner_for(
    plane: Plane, source: ScriptedSource, clock: Callable[[], float] = time.monotonic
) -> SourceRunner:
    """A runner of ``source``'s records to meters, its dead letters logged on ``clock``."""
    registry = MetricsRegistry()
    route = SourceRoute("readings", RouteTemplate.parse("/meter/{key}"), "last")
    dead = DeadLetters(MemorySink(), "dead", registry, clock=clock)  # type: ignore[arg-type]  # produces only
    router = RecordRouter(plane, [route], dead, registry)
    return SourceRunner("memory:readings", source, router, registry)  # type: ignore[arg-type]  # scripted


async def run_until_done(runner: SourceRunner, source: ScriptedSource) -> None:
    task = asyncio.create_task(runner.run())
    await source.done.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_caught_up_names_one_partition_in_the_singular(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = ScriptedSource({}, waits=2)
        runner = runner_for(plane, source)
        with caplog.at_level(logging.INFO, logger="swimstream.source"):
            await run_until_done(runner, source)
    assert runner.ready
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.source"]
    assert lines == ["memory:readings caught up with 1 partition"]


async def test_a_rebalance_is_the_connectors_info_line_and_only_a_debug_line_here(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The Kafka source logs each rebalance at info with its group; the runner's
    line said the same again, so every assignment and revoke took two lines."""
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = ScriptedSource({}, waits=1)
        runner = runner_for(plane, source)
        await run_until_done(runner, source)
        assert source.listener is not None
        with caplog.at_level(logging.DEBUG, logger="swimstream.source"):
            source.listener(Rebalance(assigned=(PARTITION,)))
            source.listener(Rebalance(revoked=(PARTITION,)))
    mine = [r for r in caplog.records if r.name == "swimstream.source"]
    assert [(r.levelno, r.getMessage()) for r in mine] == [
        (logging.DEBUG, "memory:readings assigned readings[0]"),
        (logging.DEBUG, "memory:readings released readings[0]"),
    ]


@pytest.mark.parametrize("restoring", [False, True], ids=["fetching", "restoring"])
async def test_a_partition_whose_end_stays_unknown_is_named_once_unless_it_is_restoring(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, restoring: bool
) -> None:
    """A source that reports watermarks is ready only once every partition's end is
    known. A partition no fetch ever tells the end of kept an instance unready with
    nothing in its log: now one warning names it. A partition paused for its restore
    is expected to wait, and is not named."""
    monkeypatch.setattr("swimstream.streams.catch_up.ENDS_UNKNOWN_WARNING", 0.0)
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = ScriptedSource({}, waits=4)
        source.reports_watermarks = True  # and tells no partition's end
        runner = runner_for(plane, source)
        if restoring:
            runner.restoring.add(PARTITION)
        with caplog.at_level(logging.INFO, logger="swimstream.source"):
            await run_until_done(runner, source)
    assert not runner.ready
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    expected = (
        []
        if restoring
        else ["memory:readings is not ready: no fetch has told the end of readings[0] in 0 s"]
    )
    assert warned == expected


async def test_a_burst_of_dead_letters_is_reported_whole_once_the_source_is_idle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A runner asks the dead letters for what their rate limit held back once a batch
    and when idle, so a burst that ended is told of without waiting for another one."""
    now = [0.0]

    class Later(ScriptedSource):
        async def wait_for_records(self, timeout: float) -> None:
            now[0] += 60.0  # (a wait that takes a minute)
            await super().wait_for_records(timeout)

    bad = [MemoryRecord("readings", 0, n, b"m", b"{not json") for n in range(4)]
    async with open_plane({"/meter/:id": Meter}) as plane:
        source = Later({1: bad}, waits=3)
        runner = runner_for(plane, source, clock=lambda: now[0])
        with caplog.at_level(logging.WARNING, logger="swimstream.dead_letter"):
            await run_until_done(runner, source)
    lines = [r.getMessage() for r in caplog.records if r.name == "swimstream.dead_letter"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("dead-lettered readings[0]@0 to dead: ")
    assert lines[1].startswith("dead-lettered readings[0]@3 to dead: ")
    assert lines[1].endswith("(2 more since the last report)")

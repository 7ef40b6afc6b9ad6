"""A command one agent sends another on a record's behalf fills that one's mailbox no
further than a record would: the source waits for room there too."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until


class Forwarder(Agent):
    """Passes every record on to one slower agent, naming it as ``slow_uri`` spells it."""

    entry = CommandLane[dict[str, Any]]()
    slow_uri = "/slow/x"

    @entry.on_command
    def on_entry(self, record: dict[str, Any]) -> None:
        self.command(self.slow_uri, "work", record)


class Slow(Agent):
    """Handles a command each time the test opens its gate."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()
    gate: asyncio.Semaphore

    @work.on_command
    async def on_work(self, record: dict[str, Any]) -> None:
        await self.gate.acquire()
        self.done.add(1)


def records(start: int, count: int) -> list[MemoryRecord]:
    """One record for each of ``count`` forwarders (none of their mailboxes fills)."""
    return [
        MemoryRecord("readings", 0, n, f"f{n % 20}".encode(), orjson.dumps({"n": n}))
        for n in range(start, start + count)
    ]


@pytest.mark.parametrize(
    ("slow_uri", "slow_node"),
    [
        ("/slow/x", "/slow/x"),
        # Written as user code writes it (``f"/tower/{tower}"``), not as the agent is
        # named: the source waited for room at no agent, and read on.
        ("/slow/x y", "/slow/x%20y"),
        ("/slow/%78", "/slow/x"),
    ],
)
async def test_a_mailbox_filled_by_another_agents_commands_pauses_the_source(
    slow_uri: str, slow_node: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Forwarder, "slow_uri", slow_uri)
    Slow.gate = asyncio.Semaphore(0)
    routes: dict[str, type[Agent]] = {"/fwd/:id": Forwarder, "/slow/:id": Slow}
    async with open_plane(routes, mailbox_capacity=10) as plane:
        registry = MetricsRegistry()
        route = SourceRoute("readings", RouteTemplate.parse("/fwd/{key}"), "entry")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RecordRouter(plane, [route], dead, registry)
        arrivals = {1: records(0, 20), 2: records(20, 20), 3: records(40, 20)}
        source = ScriptedSource(arrivals, waits=4)
        runner = SourceRunner("test", source, router, registry)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        try:
            # The forwarders' first commands fill the slow agent's mailbox (capacity 10)
            # after the first batch was routed (each forwarder starts first); at the
            # second the source waits for room there, far below its in-flight bound.
            await wait_until(lambda: runner.paused, 5, "a pause for the slow agent")
            await asyncio.sleep(0.05)
            assert len(source.timeouts) == 2, "read on while the slow mailbox was full"
            mailbox = plane._cells[slow_node].mailbox
            assert mailbox is not None and len(mailbox) <= 40
            for _ in range(len(mailbox) - 8):  # some 7 left: over half the capacity
                Slow.gate.release()
            await asyncio.sleep(0.05)
            left = plane._cells[slow_node].mailbox
            assert left is not None and len(left) >= 5
            assert runner.paused and len(source.timeouts) == 2
            for _ in range(100):
                Slow.gate.release()
            await wait_until(lambda: source.done.is_set(), 5, "every record read")
            await plane.settle()
            assert plane.get(slow_node, "done") == 60
            assert runner.book.inflight == 0
        finally:
            for _ in range(100):
                Slow.gate.release()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

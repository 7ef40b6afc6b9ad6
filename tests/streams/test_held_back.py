"""A full mailbox holds back the partitions that fed it, and only those: the others flow,
and the held partition's records keep their order."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from swimstream import Agent, CommandLane, CounterLane
from swimstream.metrics import MetricsRegistry
from swimstream.routing import RouteTemplate
from swimstream.runtime import Plane
from swimstream.streams.connector import InboundRecord, Rebalance, TopicPartition
from swimstream.streams.dead_letter import DeadLetters
from swimstream.streams.ingest import SourceRunner
from swimstream.streams.router import RecordRouter, SourceRoute, Stop
from swimstream.streams.tracking import OffsetBook, PartitionTracker
from swimstream.testing import MemoryRecord, MemorySink, open_plane
from tests.streams.scripted import ScriptedSource
from tests.support.waiting import wait_until

HOT = TopicPartition("readings", 0)
COLD = TopicPartition("readings", 1)


class Gated(Agent):
    """Agents whose key starts with "slow" handle a record each time the gate opens."""

    work = CommandLane[dict[str, Any]]()
    done = CounterLane()
    gate: asyncio.Semaphore
    seen: list[int]

    @work.on_command
    async def on_work(self, record: dict[str, Any]) -> None:
        if self.params["id"].startswith("slow"):
            await self.gate.acquire()
        self.seen.append(record["n"])
        self.done.add(1)


class RoutingLog(RecordRouter):
    """A router that notes the (partition, offset) of every record it routes, one at a
    time or in a batch (whose records are all of a topic with one route here)."""

    routed: list[tuple[int, int]]

    def route(self, record: InboundRecord, tracker: PartitionTracker) -> str | None:
        self.routed.append((record.partition() or 0, record.offset() or 0))
        return super().route(record, tracker)

    def route_batch(self, records: Sequence[InboundRecord], start: int, book: OffsetBook) -> Stop:
        stop = super().route_batch(records, start, book)
        self.routed += [(r.partition() or 0, r.offset() or 0) for r in records[start : stop[0]]]
        return stop


def record(tp: TopicPartition, offset: int, key: str, n: int) -> MemoryRecord:
    return MemoryRecord(tp.topic, tp.partition, offset, key.encode(), orjson.dumps({"n": n}))


@contextlib.asynccontextmanager
async def running(
    arrivals: dict[int, list[MemoryRecord]], waits: int, capacity: int = 4
) -> AsyncIterator[tuple[Plane, ScriptedSource, SourceRunner, RoutingLog]]:
    """A runner over a scripted source holding both partitions, feeding Gated agents;
    every gate opens and the runner stops on the way out."""
    Gated.gate, Gated.seen = asyncio.Semaphore(0), []
    async with open_plane({"/g/:id": Gated}, mailbox_capacity=capacity) as plane:
        registry = MetricsRegistry()
        route = SourceRoute("readings", RouteTemplate.parse("/g/{key}"), "work")
        dead = DeadLetters(MemorySink(), "dead", registry)  # type: ignore[arg-type]
        router = RoutingLog(plane, [route], dead, registry)
        router.routed = []
        source = ScriptedSource(arrivals, waits=waits)
        source.held = {HOT, COLD}
        runner = SourceRunner("test", source, router, registry)  # type: ignore[arg-type]
        task = asyncio.create_task(runner.run())
        try:
            yield plane, source, runner, router
        finally:
            for _ in range(1000):
                Gated.gate.release()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def test_a_full_mailbox_pauses_its_partition_while_the_others_flow() -> None:
    # HOT: 10 records for the slow agent (capacity 4), then 3 for "after"; COLD's
    # records come in the next waits, after HOT's pause.
    hot = [record(HOT, o, "slow", o) for o in range(10)]
    hot += [record(HOT, o, "after", o) for o in range(10, 13)]
    cold = {
        wait: [record(COLD, o, f"c{o % 3}", 100 + o) for o in range(wait * 5, wait * 5 + 5)]
        for wait in (2, 3, 4)
    }
    async with running({1: hot, **cold}, waits=6) as (plane, source, runner, router):
        await wait_until(lambda: source.done.is_set(), 5, "every wait")
        await wait_until(
            lambda: sum(plane.get(f"/g/c{k}", "done") for k in range(3)) == 15,
            5,
            "every record of the other partition done",
        )
        assert source.flow == [("pause", [HOT])], "paused more than the full mailbox's"
        assert runner.paused and runner.held_back.partitions == {HOT}
        # HOT's records up to the one that filled the slow mailbox (capacity 4) went
        # there; the rest of HOT waits, in order, "after" included, and no commit goes
        # past the first record held.
        assert not plane.is_active("/g/after")
        routed = [o for p, o in router.routed if p == 0]
        assert routed == list(range(len(routed))) and len(routed) <= 5, routed
        assert runner.held_back.records == 13 - len(routed)
        assert runner.book.trackers[HOT].committable is None
        for _ in range(1000):
            Gated.gate.release()
        await wait_until(lambda: plane.is_active("/g/after"), 5, "the held records routed")
        await plane.settle()
        assert plane.get("/g/slow", "done") == 10 and plane.get("/g/after", "done") == 3
        assert [o for p, o in router.routed if p == 0] == list(range(13))
        assert ("resume", [HOT]) in source.flow and not runner.paused
        assert runner.book.trackers[HOT].committable == 13


async def test_a_revoke_drops_the_records_of_a_held_partition_unrouted() -> None:
    hot = [record(HOT, o, "slow", o) for o in range(10)]
    async with running({1: hot}, waits=3) as (plane, source, runner, router):
        await wait_until(lambda: source.done.is_set(), 5, "every wait")
        assert runner.held_back.partitions == {HOT}
        assert source.listener is not None
        source.held = {COLD}
        source.listener(Rebalance(revoked=(HOT,)))
        assert not runner.held_back and runner.held_back.records == 0
        for _ in range(1000):
            Gated.gate.release()
        await plane.settle()
        await asyncio.sleep(0.01)
        routed = [o for p, o in router.routed if p == 0]
        assert routed == list(range(len(routed))) and len(routed) <= 5, routed
        assert plane.get("/g/slow", "done") == len(routed)
        assert ("resume", [HOT]) not in source.flow


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2), st.sampled_from(["slow", "a", "b", "c"])),
        min_size=1,
        max_size=60,
    ),
    st.integers(1, 5),
    st.integers(1, 6),
)
def test_every_record_is_routed_once_in_its_partitions_order(
    keys: list[tuple[int, str]], waits: int, capacity: int
) -> None:
    """Records of three partitions, spread over a few waits, some for a slow agent
    whose gate opens bit by bit: each is routed once and in its partition's order,
    and all are done in the end."""
    offsets = [0, 0, 0]
    arrivals: dict[int, list[MemoryRecord]] = {}
    spread = sorted(enumerate(keys), key=lambda item: item[0] % waits)  # (by arrival)
    for n, (partition, key) in spread:
        tp = TopicPartition("readings", partition)
        arrivals.setdefault(1 + n % waits, []).append(record(tp, offsets[partition], key, n))
        offsets[partition] += 1

    async def play() -> None:
        async with running(arrivals, waits=waits + 2, capacity=capacity) as (
            plane,
            source,
            runner,
            router,
        ):
            source.held |= {TopicPartition("readings", 2)}
            await wait_until(lambda: source.done.is_set(), 5, "every wait")
            while len(Gated.seen) < len(keys):
                Gated.gate.release()
                await asyncio.sleep(0)
            await plane.settle()
            assert sorted(Gated.seen) == list(range(len(keys)))
            for partition in range(3):
                routed = [o for p, o in router.routed if p == partition]
                assert routed == list(range(offsets[partition])), partition
            await wait_until(lambda: not runner.held_back, 5, "every partition resumed")
            assert runner.book.inflight == 0

    asyncio.run(play())
